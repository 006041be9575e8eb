"""The `styledistill` command: every sub-command has --help with examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from styledistill.cli import COMMANDS, build_parser, main

REGISTERED = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_console_script_help_lists_commands():
    script = Path(sys.executable).with_name("styledistill")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "examples:" in result.stdout
    for name in REGISTERED:
        assert name in result.stdout


def test_all_planned_commands_are_registered():
    assert set(REGISTERED) == set(COMMANDS)


@pytest.mark.parametrize("command", REGISTERED)
def test_each_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "styledistill " + command in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "styledistill" in capsys.readouterr().out


def test_examples_continuation_lines_end_with_a_backslash():
    """A wrapped example line must end with '\\' (QA found one that ran two flags together)."""
    import importlib
    import itertools
    import re

    for name, module_name in COMMANDS.items():
        examples = getattr(importlib.import_module(module_name), "EXAMPLES", "")
        lines = examples.splitlines()
        for line, following in itertools.pairwise(lines):
            command = line.split("#")[0]
            assert not re.search(r"\S {3,}--\w", command), f"{name}: {line!r}"
            if following.startswith("      --") and line.lstrip().startswith("styledistill"):
                assert command.rstrip().endswith("\\"), f"{name}: {line!r}"


def _failing_command(monkeypatch, exc: BaseException) -> None:
    import styledistill.cli.samples as samples

    def run(args):
        raise exc

    monkeypatch.setattr(samples, "run", run)


def test_broken_pipe_is_a_quiet_success(monkeypatch, capsys):
    _failing_command(monkeypatch, BrokenPipeError(32, "Broken pipe"))
    assert main(["samples", "--out", "x"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("/runs/a/.model.safetensors.k2j8x_1.tmp", "/runs/a/model.safetensors"),
        ("/data/.dataset.json.abc123.tmp", "/data/dataset.json"),
        ("/data/plain.png", "/data/plain.png"),
        ("/data/.hidden", "/data/.hidden"),
    ],
)
def test_write_errors_exit_2_and_name_the_final_file(monkeypatch, capsys, filename, shown):
    import errno
    import os

    _failing_command(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename))
    assert main(["samples", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err == f"styledistill samples: error: {os.strerror(errno.ENOSPC)} ({shown})\n"


def test_threads_flag_sets_torch_threads_or_fails_clearly(tmp_path, capsys):
    import torch

    missing = str(tmp_path / "missing")
    folders = ["--contents", missing, "--styles", missing, "--out", missing]
    assert main(["teach", "--teacher", "texture", *folders, "--threads", "0"]) == 2
    assert "--threads 0: must be at least 1" in capsys.readouterr().err
    before = torch.get_num_threads()
    try:
        # the flag is applied first; the missing folders then fail the command as usual
        assert main(["train", "--data", missing, "--out", missing, "--threads", "1"]) == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
