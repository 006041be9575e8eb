"""``styledistill stylize`` on single images and folders, with a tiny saved student."""

from __future__ import annotations

import pytest
from PIL import Image

from styledistill.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_student_dir too: conftest.py


def _image(path, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["stylize", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--content" in text and "--half" in text


def test_single_image(tiny_student_dir, tmp_path, monkeypatch, capsys):
    content = _image(tmp_path / "in" / "cat.jpg", (70, 45), (10, 120, 200))
    style = _image(tmp_path / "art.png", (50, 60), (220, 180, 20))
    out = tmp_path / "result.png"
    args = ["stylize", str(tiny_student_dir), "--content", str(content), "--style", str(style)]
    assert main([*args, "--out", str(out), "--size", "64", "--device", "cpu"]) == 0
    assert Image.open(out).size == (70, 45)
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--size", "64"]) == 0  # no --out: into the working folder
    assert Image.open(tmp_path / "cat_stylized.png").size == (70, 45)
    assert "cat_stylized.png" in capsys.readouterr().out


def test_folder_with_a_bad_file(tiny_student_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image(photos / "a.png", (40, 40), (255, 0, 0))
    _image(photos / "sub" / "b.jpg", (64, 32), (0, 255, 0))
    (photos / "broken.jpg").write_bytes(b"not really a jpeg")
    style = _image(tmp_path / "art.png", (48, 48), (0, 0, 255))
    out = tmp_path / "out"
    args = ["stylize", str(tiny_student_dir), "--content", str(photos), "--style", str(style)]
    code = main([*args, "--out", str(out), "--size", "64", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1  # something was skipped
    assert Image.open(out / "a.png").size == (40, 40)
    assert Image.open(out / "sub" / "b.png").size == (64, 32)
    assert not (out / "broken.png").exists()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "broken.jpg" in skipped[0]
    assert "stylized 2 image(s)" in captured.out and "skipped 1" in captured.out


def test_folder_outputs_never_collide(tiny_student_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image(photos / "x.png", (40, 40), (255, 0, 0))
    _image(photos / "x.jpg", (48, 32), (0, 255, 0))
    _image(photos / "sub" / "x.jpg", (32, 48), (0, 0, 255))
    style = _image(tmp_path / "art.png", (48, 48), (0, 0, 255))
    out = tmp_path / "out"
    args = ["stylize", str(tiny_student_dir), "--content", str(photos), "--style", str(style)]
    code = main([*args, "--out", str(out), "--size", "64", "--device", "cpu"])
    assert code == 0
    assert "stylized 3 image(s)" in capsys.readouterr().out
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["sub/x.png", "x.jpg.png", "x.png.png"]
    assert Image.open(out / "x.jpg.png").size == (48, 32)  # each output is its own input's
    assert Image.open(out / "x.png.png").size == (40, 40)
    assert Image.open(out / "sub" / "x.png").size == (32, 48)


def test_folder_targets_unique_even_for_tricky_names(tmp_path):
    from styledistill.cli.stylize import folder_targets

    names = ["a.jpg", "a.png", "a.jpg.png", "B.png", "b.jpg", "c.webp"]
    files = [tmp_path / n for n in names]
    targets = folder_targets(files, tmp_path, tmp_path / "out")
    lowered = [str(t).lower() for t in targets.values()]
    assert len(set(lowered)) == len(files)
    assert targets[tmp_path / "c.webp"] == tmp_path / "out" / "c.png"
    assert targets[tmp_path / "B.png"] == tmp_path / "out" / "B.png.png"


def test_bad_inputs_are_one_line_errors(tiny_student_dir, tmp_path, capsys):
    style = _image(tmp_path / "art.png", (48, 48), (0, 0, 255))
    content = _image(tmp_path / "c.png", (48, 48), (0, 0, 0))
    assert (
        main(
            ["stylize", str(tmp_path / "missing"), "--content", str(content), "--style", str(style)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("styledistill stylize: error:") and "missing" in err and "\n" not in err
    model = ["stylize", str(tiny_student_dir)]
    assert main([*model, "--content", str(tmp_path / "nope.png"), "--style", str(style)]) == 2
    assert "nope.png" in capsys.readouterr().err
    (tmp_path / "bad_style.png").write_bytes(b"")
    assert (
        main([*model, "--content", str(content), "--style", str(tmp_path / "bad_style.png")]) == 2
    )
    assert "bad_style.png: empty file" in capsys.readouterr().err
