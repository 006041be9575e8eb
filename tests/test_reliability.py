"""Nothing lost, nothing crashes: output safety, one preflight per command, self-healing
datasets, header-first uploads and consistent one-line messages (issue 16).

Every command that writes gets its output checked before any work: a path blocked by
a file, a disk without room, an output that is an input. Tiny models, tiny images.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TintTeacher
from styledistill.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture
def checkpoint(tiny_student_dir) -> Path:
    """conftest.py's saved tiny student."""
    return tiny_student_dir


def _image(path: Path, size=(40, 30), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _one_line_error(capsys, command: str, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"styledistill {command}: error:"), err
    assert "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _no_room(monkeypatch, free: int = 1024) -> None:
    """Pretend every disk has ``free`` bytes left."""
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - free, free))


def write_blank_png(path: Path, width: int, height: int) -> Path:
    """A greyscale PNG of zeros declaring ``width`` x ``height``, streamed (a small file)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(1)
    row = bytes(1 + width)
    data = b"".join([compressor.compress(row) for _ in range(height)] + [compressor.flush()])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )
    return path


# --------------------------------------------------------------------------- stylize


def stylize(checkpoint: Path, *args: str) -> int:
    return main(["stylize", str(checkpoint), "--size", "32", "--device", "cpu", *args])


def test_stylize_never_writes_over_its_inputs(checkpoint, tmp_path, capsys):
    photo = _image(tmp_path / "photos" / "cat.png")
    style = _image(tmp_path / "art.png", seed=1)
    before = photo.read_bytes(), style.read_bytes()
    for out in (photo, style):
        assert (
            stylize(checkpoint, "--content", str(photo), "--style", str(style), "--out", str(out))
            == 2
        )
        _one_line_error(capsys, "stylize", "would destroy the input")
    photos = photo.parent
    for out in (photos, photos / "stylized"):  # the folder itself, or a folder inside it
        code = stylize(
            checkpoint, "--content", str(photos), "--style", str(style), "--out", str(out)
        )
        assert code == 2
        _one_line_error(capsys, "stylize", str(photos), "outputs would be written among the inputs")
    assert (photo.read_bytes(), style.read_bytes()) == before
    assert sorted(p.name for p in photos.iterdir()) == ["cat.png"]


def test_stylize_overwrites_an_existing_output_only_when_asked(checkpoint, tmp_path, capsys):
    photo = _image(tmp_path / "cat.png")
    style = _image(tmp_path / "art.png", seed=1)
    out = tmp_path / "result.png"
    out.write_text("my notes, not an image")
    args = ["--content", str(photo), "--style", str(style), "--out", str(out)]
    assert stylize(checkpoint, *args) == 2
    _one_line_error(capsys, "stylize", "already exists", "--overwrite")
    assert out.read_text() == "my notes, not an image"
    assert stylize(checkpoint, *args, "--overwrite") == 0
    assert Image.open(out).size == (40, 30)


def test_stylize_folder_writes_only_new_names_and_lists_the_kept_ones(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image(photos / "a.png")
    _image(photos / "b.png", seed=2)
    style = _image(tmp_path / "art.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_text("kept")
    args = ["--content", str(photos), "--style", str(style), "--out", str(out)]
    assert stylize(checkpoint, *args) == 0
    printed = capsys.readouterr().out
    assert "stylized 1 image(s)" in printed
    assert "kept 1 existing output(s), not overwritten" in printed and "a.png" in printed
    assert (out / "a.png").read_text() == "kept" and Image.open(out / "b.png").size == (40, 30)
    assert stylize(checkpoint, *args, "--overwrite") == 0
    assert "stylized 2 image(s)" in capsys.readouterr().out
    assert Image.open(out / "a.png").size == (40, 30)


def test_stylize_output_checks_come_before_the_model_loads(tmp_path, capsys):
    """A blocked output or a full disk is one line, even with a checkpoint that is not there."""
    photo = _image(tmp_path / "photos" / "cat.png")
    style = _image(tmp_path / "art.png", seed=1)
    (tmp_path / "file").write_text("x")
    missing_model = tmp_path / "no-model"
    args = ["--content", str(photo), "--style", str(style)]
    assert stylize(missing_model, *args, "--out", str(tmp_path / "file" / "sub" / "o.png")) == 2
    _one_line_error(capsys, "stylize", "is a file, not a folder")
    assert (
        stylize(
            missing_model,
            "--content",
            str(photo.parent),
            "--style",
            str(style),
            "--out",
            str(tmp_path / "file"),
        )
        == 2
    )
    _one_line_error(capsys, "stylize", "is a file, not a folder")


def test_stylize_refuses_a_disk_without_room(checkpoint, tmp_path, capsys, monkeypatch):
    photo = _image(tmp_path / "cat.png", size=(400, 300))
    style = _image(tmp_path / "art.png", seed=1)
    _no_room(monkeypatch)
    code = stylize(
        checkpoint, "--content", str(photo), "--style", str(style), "--out", str(tmp_path / "o.png")
    )
    assert code == 2
    _one_line_error(capsys, "stylize", "needs about", "free")
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- video


def _odd_video(path: Path, width: int = 161, height: int = 121, frames: int = 3) -> Path:
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as sink:
        stream = sink.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        rng = np.random.default_rng(0)
        for index in range(frames):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return path


def test_video_says_it_cropped_and_refuses_unsafe_or_ignored_arguments(
    checkpoint, tmp_path, capsys
):
    clip = _odd_video(tmp_path / "clip.mp4")
    style = _image(tmp_path / "art.png", seed=1)
    base = ["--video", str(clip), "--style", str(style)]
    out = tmp_path / "styled.mp4"
    assert stylize(checkpoint, *base, "--out", str(out)) == 0
    assert "cropped 161x121 -> 160x120" in capsys.readouterr().out
    assert stylize(checkpoint, *base, "--out", str(out)) == 2  # exists: needs --overwrite
    _one_line_error(capsys, "stylize", "already exists", "--overwrite")
    assert stylize(checkpoint, *base, "--out", str(clip)) == 2
    _one_line_error(capsys, "stylize", "would destroy the input")
    assert (
        stylize(checkpoint, *base, "--content", str(style), "--out", str(tmp_path / "x.mp4")) == 2
    )
    _one_line_error(capsys, "stylize", "--content is not used with --video")


# --------------------------------------------------------------------------- teach / dataset


def make_folders(root: Path, contents: int = 3, styles: int = 3) -> tuple[Path, Path]:
    for i in range(contents):
        _image(root / "contents" / f"c{i}.png", size=(48, 40), seed=i)
    for i in range(styles):
        _image(root / "styles" / f"s{i}.png", size=(40, 48), seed=10 + i)
    return root / "contents", root / "styles"


def teach_tint(contents: Path, styles: Path, out: Path):
    from styledistill.dataset import teach

    return teach(TintTeacher(), contents, styles, out, show_progress=False)


def manifest_keys(out: Path) -> list[str]:
    return [
        json.loads(line)["key"]
        for manifest in sorted(out.glob("shard-*/manifest.jsonl"))
        for line in manifest.read_text().splitlines()
    ]


def test_teach_rerun_repairs_missing_and_corrupt_images_once(tmp_path, capsys):
    from styledistill.dataset import dataset_info, read_manifest

    contents, styles = make_folders(tmp_path)
    out = tmp_path / "data"
    teach_tint(contents, styles, out)
    records = read_manifest(out)
    missing, truncated = out / records[0]["output"], out / records[1]["output"]
    original = truncated.read_bytes()
    missing.unlink()
    truncated.write_bytes(original[: len(original) // 2])

    summary = teach_tint(contents, styles, out)
    assert summary.repaired == 2 and summary.written == 2
    assert "2 missing or corrupt images made again" in summary.line()
    keys = manifest_keys(out)
    assert len(keys) == len(set(keys)) == 9  # one line per key
    assert Image.open(missing).size == (32, 32) and truncated.read_bytes() == original
    info = dataset_info(out, verify=True)
    assert (info["duplicate_keys"], info["missing_outputs"], info["corrupt_outputs"]) == (0, 0, 0)
    assert main(["dataset", "info", str(out), "--verify"]) == 0
    capsys.readouterr()
    again = teach_tint(contents, styles, out)  # nothing left to repair
    assert (again.written, again.repaired, again.already_done) == (0, 0, 9)


def test_dataset_progress_counts_only_pairs_that_can_be_made(tmp_path, capsys):
    from styledistill.dataset import dataset_info

    contents, styles = make_folders(tmp_path)
    (contents / "broken.png").write_text("not an image")
    teach_tint(contents, styles, tmp_path / "data")
    info = dataset_info(tmp_path / "data")
    assert (info["pairs_done"], info["pairs_planned"], info["pairs_makeable"]) == (9, 12, 9)
    assert main(["dataset", "info", str(tmp_path / "data")]) == 0
    printed = capsys.readouterr().out
    assert "9 done / 9 that can be made (100.0%)" in printed and "75.0%" not in printed
    assert "3 skipped (unreadable inputs)" in printed


def test_teach_checks_its_output_before_loading_a_teacher(tmp_path, capsys, monkeypatch):
    contents, styles = make_folders(tmp_path, 2, 2)
    (tmp_path / "file").write_text("x")
    args = ["teach", "--teacher", "texture", "--contents", str(contents), "--styles", str(styles)]
    assert main([*args, "--out", str(tmp_path / "file" / "data")]) == 2
    _one_line_error(capsys, "teach", "is a file, not a folder")
    _no_room(monkeypatch)
    assert main([*args, "--out", str(tmp_path / "data")]) == 2
    _one_line_error(capsys, "teach", "needs about")
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- train


# train_args: conftest.py


def test_train_rejects_arguments_before_creating_out(train_args, tmp_path, capsys):
    contents, styles = make_folders(tmp_path)
    data = tmp_path / "data"
    teach_tint(contents, styles, data)
    out = tmp_path / "run"
    for bad, fragment in (
        (["--data", str(tmp_path / "nope")], "no such dataset"),
        (["--preset", "sttr-huge"], "sttr-huge"),
        (["--model-option", "not_a_setting=1"], "not_a_setting"),
    ):
        assert main(train_args(data, out) + bad) == 2
        _one_line_error(capsys, "train", fragment)
        assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert main(train_args(data, tmp_path / "file" / "run")) == 2
    _one_line_error(capsys, "train", "is a file, not a folder")


def test_train_skips_unreadable_pairs_reports_them_and_says_it_stopped_early(
    train_args, tmp_path, capsys
):
    from styledistill.dataset import read_manifest

    contents, styles = make_folders(tmp_path, 4, 4)
    data = tmp_path / "data"
    teach_tint(contents, styles, data)
    record = read_manifest(data)[0]
    target = data / record["output"]
    target.write_bytes(target.read_bytes()[:40])  # truncated teacher image
    run = tmp_path / "run"
    code = main(train_args(data, run, "--steps", "50", "--max-minutes", "0.0001"))
    assert code == 0
    captured = capsys.readouterr()
    assert "stopped early: --max-minutes" in captured.out
    assert "skipped 1 unreadable pair(s)" in captured.err
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    skipped = [r for r in log if r.get("type") == "skipped_pairs"]
    assert skipped and list(skipped[0]["pairs"]) == [record["key"]]
    end = log[-1]
    assert end["type"] == "end" and end["skipped_pairs"] == 1 and end["stopped_early"]


def test_paired_dataset_replaces_a_pair_that_fails_late_and_counts_it(tmp_path):
    from styledistill.dataset import PairedDataset, read_manifest

    contents, styles = make_folders(tmp_path, 2, 2)
    data = tmp_path / "data"
    teach_tint(contents, styles, data)
    dataset = PairedDataset(data, size=32, train=False)
    assert len(dataset) == 4 and dataset.unreadable_pairs() == {}
    first = read_manifest(data)[0]
    Path(first["content"]).write_text("gone bad after the start")  # fails only when decoded
    content, _, _ = dataset[0]  # the next readable pair instead
    assert content.shape == (3, 32, 32)
    assert list(dataset.unreadable_pairs()) == [first["key"]]


# --------------------------------------------------------------------------- evaluate, bench, export, samples, demo


def test_evaluate_reports_missing_checkpoint_and_bad_out_before_reading_images(
    tmp_path, capsys, checkpoint
):
    contents, styles = make_folders(tmp_path, 2, 2)
    args = ["evaluate", "--contents", str(contents), "--styles", str(styles), "--size", "32"]
    # --contents has no images: the checkpoint must be what is reported
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = ["--checkpoint", str(tmp_path / "no-student"), "--out", str(tmp_path / "r")]
    assert main(["evaluate", "--contents", str(empty), "--styles", str(styles), *missing]) == 2
    _one_line_error(capsys, "evaluate", "no-student")
    ok = ["--checkpoint", str(checkpoint), "--device", "cpu", "--quiet"]
    assert main([*args, *ok, "--out", str(contents / "report")]) == 2
    _one_line_error(capsys, "evaluate", "outputs would be written among the inputs")
    (tmp_path / "file").write_text("x")
    assert main([*args, *ok, "--out", str(tmp_path / "file" / "r")]) == 2
    _one_line_error(capsys, "evaluate", "is a file, not a folder")
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("{}")
    assert main([*args, *ok, "--out", str(report)]) == 2
    _one_line_error(capsys, "evaluate", "already holds a report", "--overwrite")


def test_bench_checks_out_before_the_timing_run(tmp_path, capsys, monkeypatch):
    import styledistill.benchmark as benchmark

    def must_not_run(settings):
        raise AssertionError("the timing run started before --out was checked")

    monkeypatch.setattr(benchmark, "run_benchmark", must_not_run)
    (tmp_path / "file").write_text("x")
    assert main(["bench", "--teacher", "none", "--out", str(tmp_path / "file" / "b")]) == 2
    _one_line_error(capsys, "bench", "is a file, not a folder")
    _no_room(monkeypatch)
    assert main(["bench", "--teacher", "none", "--out", str(tmp_path / "b")]) == 2
    _one_line_error(capsys, "bench", "needs about")


def test_export_checks_room_before_exporting(checkpoint, tmp_path, capsys, monkeypatch):
    import styledistill.export as export

    def must_not_run(*args, **kwargs):
        raise AssertionError("the export started before --onnx was checked")

    monkeypatch.setattr(export, "export_onnx", must_not_run)
    _no_room(monkeypatch)
    assert main(["export", str(checkpoint), "--onnx", str(tmp_path / "m.onnx")]) == 2
    _one_line_error(capsys, "export", "needs about", "m.onnx")


def test_samples_and_demo_check_out_first(tmp_path, capsys, monkeypatch):
    import styledistill.demo as demo

    def must_not_run(*args, **kwargs):
        raise AssertionError("the demo started before --out was checked")

    monkeypatch.setattr(demo, "run_demo", must_not_run)
    (tmp_path / "file").write_text("x")
    assert main(["samples", "--out", str(tmp_path / "file" / "s"), "--quiet"]) == 2
    _one_line_error(capsys, "samples", "is a file, not a folder")
    assert main(["demo", "--out", str(tmp_path / "file"), "--quiet"]) == 2
    _one_line_error(capsys, "demo", "is a file, not a folder")
    mine = tmp_path / "my-photos"
    _image(mine / "holiday.png")
    assert main(["demo", "--out", str(mine), "--quiet"]) == 2
    _one_line_error(capsys, "demo", "already holds other files (holiday.png)")
    _no_room(monkeypatch)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 2
    _one_line_error(capsys, "demo", "needs about")


# --------------------------------------------------------------------------- smaller messages


def test_pickle_refusal_names_the_cli_flag(checkpoint, tmp_path, capsys):
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(checkpoint / "config.json", pickled / "config.json")
    torch.save(load_file(str(checkpoint / "model.safetensors")), pickled / "pytorch_model.bin")
    photo = _image(tmp_path / "cat.png")
    args = ["--content", str(photo), "--style", str(photo), "--out", str(tmp_path / "o.png")]
    assert stylize(pickled, *args) == 2
    err = _one_line_error(capsys, "stylize", "--allow-pickle")
    assert "allow_pickle=True" not in err
    assert stylize(pickled, *args, "--allow-pickle") == 0


def test_onnx_loader_refuses_like_the_torch_path(tmp_path):
    from styledistill.errors import StyledistillError
    from styledistill.images import ImageError, load_image
    from styledistill.onnx_runtime import load_rgb

    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    for name, fragment in (
        ("dot.png", "smaller than the minimum 16x16"),
        ("empty.png", "empty file (0 bytes)"),
        ("text.png", "not an image (unrecognized file format)"),
    ):
        with pytest.raises(ImageError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            load_image(tmp_path / name)
        with pytest.raises(
            StyledistillError, match=fragment.replace("(", r"\(").replace(")", r"\)")
        ):
            load_rgb(tmp_path / name)


# --------------------------------------------------------------------------- serve


def test_page_checks_upload_headers_before_any_decode_and_logs_one_line(
    checkpoint, tmp_path, capsys, monkeypatch
):
    gr = pytest.importorskip("gradio")
    from styledistill.serve import build_app, cleanup
    from styledistill.student import Stylizer

    stylizer = Stylizer.from_pretrained(checkpoint, device="cpu", size=32)
    app = build_app(stylizer, temp_dir=tmp_path / "app", sample_styles=False)
    try:
        run = next(fn for fn in app.fns.values() if fn.name == "run")
        assert run.preprocess is False  # Gradio must not decode uploads before our checks
        huge = (
            write_blank_png(tmp_path / "upload" / "huge.png", 20000, 20000)
            if (tmp_path / "upload").mkdir() is None
            else None
        )
        text = tmp_path / "upload" / "notes.png"
        text.write_text("a text file")
        style = _image(tmp_path / "upload" / "style.png", seed=1)

        def upload(path: Path) -> dict:
            return {"path": str(path), "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

        from PIL import ImageFile

        decoded = []  # every image whose pixels PIL decodes (the header alone is not decoding)
        load = ImageFile.ImageFile.load
        monkeypatch.setattr(
            ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or load(image)
        )
        with pytest.raises(gr.Error) as info:
            run.fn(upload(huge), upload(style))
        assert decoded == []  # refused from the header: not one pixel of either image decoded
        assert str(info.value.message).startswith(
            "content image is 20000x20000 = 400,000,000 pixels"
        )
        with pytest.raises(gr.Error) as info:
            run.fn(upload(text), upload(style))
        message = str(info.value.message)
        assert message == "content image is not an image file this page can read"
        assert str(tmp_path) not in message
        assert decoded == []
        _, path = run.fn(upload(style), upload(style))
        assert Path(path).is_file() and decoded  # the counter does see a real decode
        err = capsys.readouterr().err
        refusals = [
            line for line in err.splitlines() if line.startswith("styledistill serve: refused")
        ]
        assert len(refusals) == 2 and "Traceback" not in err
    finally:
        cleanup(app)
