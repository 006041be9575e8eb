"""``styledistill teach`` / ``dataset info`` as a user runs them, with the real texture teacher.

Includes the kill -9 test: a teach subprocess is SIGKILLed mid-run and rerun; the
result must be exactly the planned set, each key once, every image decodable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styledistill.cli import main
from styledistill.dataset import make_plan, read_failures, read_manifest
from styledistill.dataset.writer import shard_from_env
from styledistill.errors import ConfigError
from styledistill.images import load_image

#: The texture teacher at its cheapest (one scale, one patch size): the same code, tiny work.
FAST_TEXTURE = [
    "--teacher", "texture", "--size", "32", "--scales", "1", "--patch-sizes", "8",
    "--gaps", "4", "--iterations", "1", "--teacher-option", "irls_steps=1",
]  # fmt: skip


def teach_args(contents: Path, styles: Path, out: Path, *extra: str) -> list[str]:
    return [
        "teach", *FAST_TEXTURE, "--contents", str(contents), "--styles", str(styles),
        "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def check_dataset(out: Path, expected_keys: set[str]) -> list[dict]:
    """Every planned key exactly once, every manifest line parses, every image decodes."""
    lines = []
    for manifest in sorted(out.glob("shard-*/manifest.jsonl")):
        text = manifest.read_text()
        assert text.endswith("\n")
        lines += [json.loads(line) for line in text.splitlines()]
    keys = [line["key"] for line in lines]
    assert len(keys) == len(set(keys)), "a key was written twice"
    assert set(keys) == expected_keys
    for line in lines:
        image = load_image(out / line["output"])
        assert tuple(image.shape) == (3, 32, 32)
    assert not list(out.rglob("*.tmp"))
    return lines


def test_teach_texture_reports_bad_inputs_and_writes_dataset(make_images, tmp_path, capsys):
    contents, styles, out = tmp_path / "contents", tmp_path / "styles", tmp_path / "data"
    make_images(contents, 3, seed=0, prefix="photo", digits=2)
    make_images(styles, 2, seed=1, prefix="art", digits=2)
    png = (contents / "photo00.png").read_bytes()
    (contents / "truncated.png").write_bytes(png[: len(png) // 3])
    (contents / "readme.png").write_text("not an image")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(styles / "small.png")

    assert main(teach_args(contents, styles, out, "--batch-size", "2")) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "6 pairs written" in summary and "3 inputs unreadable (9 pairs skipped)" in summary

    plan = make_plan(contents, styles)
    assert len(plan) == 5 * 3
    good = {p.key for p in plan.pairs if "photo" in p.content_rel and "art" in p.style_rel}
    records = check_dataset(out, good)
    assert {r["teacher"] for r in records} == {"texture"}
    assert records[0]["teacher_config"]["patch_sizes"] == [8]
    failures = {Path(f["path"]).name: f for f in read_failures(out)}
    assert set(failures) == {"truncated.png", "readme.png", "small.png"}
    assert (
        failures["small.png"]["role"] == "style" and "10x12" not in failures["small.png"]["reason"]
    )
    assert "12x10" in failures["small.png"]["reason"]

    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    # finished: progress is counted against the pairs that can be made, not the plan
    assert "6 done / 6 that can be made (100.0%); 15 planned, 9 skipped" in text
    assert "texture (6 pairs)" in text

    # Same folder, other settings: refused in one line, nothing touched.
    before = (out / "shard-00000-of-00001" / "manifest.jsonl").read_bytes()
    assert main(teach_args(contents, styles, out, "--seed", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already holds a different dataset (seed was 0, now 1)" in err
    assert (out / "shard-00000-of-00001" / "manifest.jsonl").read_bytes() == before


def test_teach_rejects_flags_of_the_other_teacher(make_images, tmp_path, capsys):
    make_images(tmp_path / "c", 1, seed=0, prefix="c", digits=2)
    args = teach_args(tmp_path / "c", tmp_path / "c", tmp_path / "o", "--gamma", "0.5")
    assert main(args) == 2
    assert "--gamma: not a setting of --teacher texture" in capsys.readouterr().err
    assert main(teach_args(tmp_path / "missing", tmp_path / "c", tmp_path / "o")) == 2
    assert "--contents" in capsys.readouterr().err


def test_shards_from_torchrun_env_and_slurm_flags(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert shard_from_env() == (1, 0)
    assert shard_from_env(8, 3) == (8, 3)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert shard_from_env() == (4, 2)
    assert shard_from_env(3, 1) == (12, 6)  # an array of torchrun jobs
    with pytest.raises(ConfigError, match="go together"):
        shard_from_env(3, None)
    with pytest.raises(ConfigError, match=r"outside 0\.\.2"):
        shard_from_env(3, 3)


def test_slurm_style_shards_add_up_to_the_plan(make_images, tmp_path, capsys):
    contents, styles, out = tmp_path / "c", tmp_path / "s", tmp_path / "data"
    make_images(contents, 3, seed=0, prefix="c", digits=2)
    make_images(styles, 2, seed=1, prefix="s", digits=2)
    for index in (1, 0):
        assert (
            main(
                teach_args(contents, styles, out, "--num-shards", "2", "--shard-index", str(index))
            )
            == 0
        )
    assert sorted(p.name for p in out.glob("shard-*")) == [
        "shard-00000-of-00002",
        "shard-00001-of-00002",
    ]
    check_dataset(out, {p.key for p in make_plan(contents, styles).pairs})
    assert json.loads((out / "dataset.json").read_text())["num_shards"] == 2


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_exactly_the_plan(make_images, tmp_path):
    contents, styles, out = tmp_path / "c", tmp_path / "s", tmp_path / "data"
    make_images(contents, 8, seed=0, prefix="c", digits=2)
    make_images(styles, 5, seed=1, prefix="s", digits=2)
    command = [
        sys.executable,
        "-m",
        "styledistill",
        *teach_args(contents, styles, out, "--batch-size", "3"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    manifest = out / "shard-00000-of-00001" / "manifest.jsonl"

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.005)
    assert process.poll() is None, (
        "teach finished before it could be killed: " + process.stderr.read().decode()
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    at_kill = len(read_manifest(out))
    assert 2 <= at_kill < 40

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{at_kill} already done" in rerun.stderr
    check_dataset(out, {p.key for p in make_plan(contents, styles).pairs})


def test_teach_styleid_with_missing_weights_fails_in_one_line(make_images, tmp_path, capsys):
    pytest.importorskip("diffusers")
    make_images(tmp_path / "c", 1, seed=0, prefix="c", digits=2)
    args = [
        "teach", "--teacher", "styleid", "--model", str(tmp_path / "no-such-model"),
        "--contents", str(tmp_path / "c"), "--styles", str(tmp_path / "c"),
        "--out", str(tmp_path / "o"), "--device", "cpu", "--steps", "2",
    ]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no-such-model" in err
    assert not (tmp_path / "o").exists()


def test_custom_patch_sizes_keep_a_valid_finest_scale_subset():
    """`--patch-sizes 13,8` must not fail on the teacher's default finest sizes (13, 9).

    A texture teacher without ``finest_patch_sizes`` fails here (KeyError/ConfigError):
    losing the setting is a regression, not a reason to skip.
    """
    from styledistill.cli import build_parser
    from styledistill.cli.teach import build_teacher

    base = ["teach", "--teacher", "texture", "--contents", "c", "--styles", "s", "--out", "o"]

    def finest(*flags: str):
        args = build_parser().parse_args([*base, *flags])
        return build_teacher(args, device=None).config()["finest_patch_sizes"]

    assert finest("--patch-sizes", "13,8", "--gaps", "8,4") == [13]
    assert finest("--patch-sizes", "8", "--gaps", "4") is None  # none left: all sizes
    chosen = ["--teacher-option", "finest_patch_sizes=[8]"]
    assert finest("--patch-sizes", "13,8", "--gaps", "8,4", *chosen) == [8]
