"""``dataset import``: stylized images made elsewhere become a dataset that ``train`` reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from styledistill.cli import main
from styledistill.dataset.paired import PairedDataset
from styledistill.dataset.reader import dataset_info, read_failures, read_manifest


def _png(path: Path, size: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def official(tmp_path) -> Path:
    """The official StyleID code's layout: contents/, styles/, stylized/{c}_stylized_{s}."""
    root = tmp_path / "styleid_out"
    for i in range(2):
        _png(root / "contents" / f"0{i}.png", 40, i)
    for j in range(3):
        _png(root / "styles" / f"0{j}.png", 40, 10 + j)
    for i in range(2):
        for j in range(3):
            _png(root / "stylized" / f"0{i}_stylized_0{j}.png", 32, 20 + 3 * i + j)
    return root


def _import(root: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "dataset",
            "import",
            "--stylized",
            str(root / "stylized"),
            "--contents",
            str(root / "contents"),
            "--styles",
            str(root / "styles"),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.png")}


def test_official_names_import_with_the_official_settings_and_train_reads_them(
    official, tmp_path, capsys
):
    before = _hashes(official)
    out = tmp_path / "data"
    assert _import(official, out) == 0
    assert "6 pairs imported, 0 already there, 0 files skipped" in capsys.readouterr().out
    records = read_manifest(out)
    assert len(records) == 6 and len({r["key"] for r in records}) == 6
    first = records[0]
    assert first["teacher"] == "styleid"
    settings = json.loads((out / "dataset.json").read_text())
    text = json.dumps(settings) + json.dumps(first)
    assert '"gamma": 0.75' in text and '"tau": 1.5' in text and '"num_steps": 50' in text
    source = first["imported"]["source"]
    assert first["imported"]["sha256"] == hashlib.sha256(Path(source).read_bytes()).hexdigest()
    info = dataset_info(out, verify=True)
    assert info["pairs_done"] == 6 and info["duplicate_keys"] == 0
    assert len(PairedDataset(out, size=32)) == 6  # train reads it like a taught one
    assert _hashes(official) == before  # sources are only read


def test_a_rerun_adds_only_what_is_new(official, tmp_path, capsys):
    out = tmp_path / "data"
    (official / "stylized" / "01_stylized_02.png").rename(tmp_path / "later.png")
    assert _import(official, out) == 0
    assert len(read_manifest(out)) == 5
    (tmp_path / "later.png").rename(official / "stylized" / "01_stylized_02.png")
    capsys.readouterr()
    assert _import(official, out) == 0
    assert "1 pairs imported, 5 already there" in capsys.readouterr().out
    assert _import(official, out) == 0
    assert len(read_manifest(out)) == 6


def test_unmatched_unreadable_and_odd_sized_files_are_listed_with_a_reason(
    official, tmp_path, capsys
):
    (official / "stylized" / "notes_stylized_00.png").write_bytes(b"not an image")
    (official / "stylized" / "00_stylized_00.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _png(official / "stylized" / "01_stylized_00.png", 48, 99)  # odd size: others are 32
    (official / "stylized" / "readme.txt").write_text("made with StyleID")
    out = tmp_path / "data"
    assert _import(official, out) == 0
    text = capsys.readouterr().out
    assert "4 pairs imported" in text and "files skipped" in text
    reasons = {Path(f["path"]).name: f["reason"] for f in read_failures(out)}
    assert "00_stylized_00.png" in reasons and "01_stylized_00.png" in reasons
    assert any("notes_stylized_00" in name for name in reasons)
    assert all(reason and "\n" not in reason for reason in reasons.values())


def test_pairs_files_and_patterns(official, tmp_path):
    rows = ["content,style,stylized"] + [
        f"contents/0{i}.png,styles/0{j}.png,stylized/0{i}_stylized_0{j}.png"
        for i in range(2)
        for j in range(2)
    ]
    (official / "pairs.csv").write_text("\n".join(rows) + "\n")
    assert (
        main(
            [
                "dataset",
                "import",
                "--pairs",
                str(official / "pairs.csv"),
                "--out",
                str(tmp_path / "csv"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(read_manifest(tmp_path / "csv")) == 4
    lines = [
        json.dumps(
            {
                "content": f"contents/0{i}.png",
                "style": "styles/02.png",
                "stylized": f"stylized/0{i}_stylized_02.png",
            }
        )
        for i in range(2)
    ]
    (official / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    assert (
        main(
            [
                "dataset",
                "import",
                "--pairs",
                str(official / "pairs.jsonl"),
                "--out",
                str(tmp_path / "jsonl"),
                "--no-progress",
                "--teacher",
                "mytool",
                "--teacher-option",
                "strength=0.5",
            ]
        )
        == 0
    )
    record = read_manifest(tmp_path / "jsonl")[0]
    assert record["teacher"] == "mytool"
    assert "strength" in json.dumps(json.loads((tmp_path / "jsonl" / "dataset.json").read_text()))
    renamed = tmp_path / "renamed"
    for path in (official / "stylized").glob("*.png"):
        content, _, style = path.stem.partition("_stylized_")
        _png(renamed / f"{style}-on-{content}.png", 32, 0)
    assert (
        main(
            [
                "dataset",
                "import",
                "--stylized",
                str(renamed),
                "--contents",
                str(official / "contents"),
                "--styles",
                str(official / "styles"),
                "--pattern",
                "{style}-on-{content}",
                "--out",
                str(tmp_path / "pat"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(read_manifest(tmp_path / "pat")) == 6


def test_nothing_to_import_exits_1_and_bad_arguments_are_one_line(official, tmp_path, capsys):
    assert _import(official, tmp_path / "data", "--pattern", "{content}-x-{style}") == 1
    capsys.readouterr()
    assert (
        main(
            [
                "dataset",
                "import",
                "--stylized",
                str(tmp_path / "missing"),
                "--contents",
                str(official / "contents"),
                "--styles",
                str(official / "styles"),
                "--out",
                str(tmp_path / "d2"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "error: --stylized" in err and "no such folder" in err and "\n" not in err


@pytest.mark.parametrize("preset", ["sttr-small", "sttr-paper"])
def test_both_presets_train_on_imported_pairs(official, tmp_path, train_args, preset):
    """The paper's STTR trains on the same imported StyleID data as the small student
    (tiny sizes of each preset: the tokenizers, widths and depths of ``train_args``)."""
    data, run = tmp_path / "data", tmp_path / "run"
    assert _import(official, data) == 0
    steps = ["--preset", preset, "--steps", "2", "--eval-every", "2", "--save-every", "2"]
    assert main(train_args(data, run, *steps)) == 0
    config = json.loads((run / "student" / "config.json").read_text())
    assert config["name"] == preset
    assert (config.get("colour_prior") is None) == (preset == "sttr-paper")  # no small extras
    assert config["extra"]["teacher"].startswith("styleid")
