"""The paired dataset: plan, shard writer (atomic, resumable), readers, PairedDataset.

Most tests drive the writer with a tiny fake teacher (fast, exact); the StyleID test
runs the real diffusion teacher with tiny random components through the same writer.
CLI and multi-process tests are in test_teach_cli.py and test_teach_distributed.py.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styledistill.cli import main
from styledistill.dataset import (
    PairedDataset,
    dataset_info,
    make_plan,
    pair_key,
    read_failures,
    read_manifest,
    split_keys,
    teach,
)
from styledistill.dataset import writer as writer_module
from styledistill.dataset.writer import DatasetWriteError, JsonlAppender
from styledistill.errors import ConfigError
from styledistill.images import load_image

KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]+__[A-Za-z0-9._-]+__[0-9a-f]{8}$")


def add_bad_inputs(folder: Path) -> dict[str, str]:
    """A corrupt PNG, a text file named .png and a too-small image; name -> reason fragment."""
    good = folder / "ok_for_truncation.png"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(good)
    data = good.read_bytes()
    good.unlink()
    (folder / "corrupt.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.png").write_text("this is not an image\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "tiny.png")
    return {"corrupt.png": "corrupt", "notes.png": "not an image", "tiny.png": "smaller than"}


class FakeTeacher:
    """Follows the teacher protocol; output = mix of content and style colour + seeded noise.

    Records how often each style was prepared and the size of every batch.
    """

    name = "fake"

    def __init__(self, size: int = 32, mix: float = 0.5, noise: float = 0.05) -> None:
        self.size = size
        self.mix = mix
        self.noise = noise
        self.prepared: list[float] = []
        self.batches: list[int] = []

    def config(self) -> dict:
        return {"size": self.size, "mix": self.mix, "noise": self.noise}

    def model_info(self) -> dict:
        return {"model_id": "fake/model", "revision": "r1"}

    def prepare_style(self, style: torch.Tensor) -> torch.Tensor:
        assert tuple(style.shape) == (3, self.size, self.size)
        self.prepared.append(float(style.sum()))
        return style.mean(dim=(1, 2))

    def stylize(self, contents, styles, *, batch_size=None, seeds=None) -> torch.Tensor:
        self.batches.append(len(contents))
        outputs = []
        prepared: dict[int, torch.Tensor] = {}
        for content, style, seed in zip(contents, styles, seeds):
            if style.ndim == 3:  # an image: prepare it once per call, like real teachers
                if id(style) not in prepared:
                    prepared[id(style)] = self.prepare_style(style)
                style = prepared[id(style)]
            colour = style
            noise = torch.rand(
                3, self.size, self.size, generator=torch.Generator().manual_seed(seed)
            )
            out = (1 - self.mix) * content + self.mix * colour[:, None, None]
            outputs.append((out + self.noise * (noise - 0.5)).clamp(0, 1))
        return torch.stack(outputs)


class BatchedFakeTeacher(FakeTeacher):
    """A fake teacher that can prepare several styles in one call (like StyleID)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batched_prepares: list[int] = []

    def prepare_styles(self, styles: list[torch.Tensor]) -> list[torch.Tensor]:
        self.batched_prepares.append(len(styles))
        return [self.prepare_style(style) for style in styles]


@pytest.fixture
def folders(make_images, tmp_path: Path) -> tuple[Path, Path]:
    contents, styles = tmp_path / "contents", tmp_path / "styles"
    make_images(contents, 3, seed=1, prefix="photo")
    make_images(styles, 2, seed=2, prefix="art")
    return contents, styles


def manifest_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# --------------------------------------------------------------------------- plan


def test_plan_all_pairs_is_style_major_deterministic_with_safe_unique_keys(
    make_images, tmp_path, folders
):
    contents, styles = folders
    (contents / "sub").mkdir()
    make_images(contents / "sub", 1, seed=9, prefix="photo")  # same stem as photo0.png
    plan = make_plan(contents, styles, seed=3)
    assert len(plan) == 4 * 2 and plan.num_contents == 4 and plan.num_styles == 2
    keys = [p.key for p in plan.pairs]
    assert len(set(keys)) == len(keys)
    assert all(KEY_PATTERN.match(k) for k in keys)
    assert [p.style_rel for p in plan.pairs] == sorted(p.style_rel for p in plan.pairs)
    assert make_plan(contents, styles, seed=3).pairs == plan.pairs
    assert pair_key("a/x y!.jpg", "s.png") != pair_key("b/x y!.jpg", "s.png")
    assert pair_key("a/x y!.jpg", "s.png").startswith("x_y__s__")
    assert len({p.seed for p in plan.pairs}) == len(plan)


def test_plan_styles_per_content_limit_and_shards(make_images, folders):
    contents, styles = folders
    make_images(styles, 5, seed=4, prefix="more")
    plan = make_plan(contents, styles, styles_per_content=3, seed=0)
    assert len(plan) == 3 * 3
    per_content: dict[str, set[str]] = {}
    for pair in plan.pairs:
        per_content.setdefault(pair.content_rel, set()).add(pair.style_rel)
    assert all(len(chosen) == 3 for chosen in per_content.values())
    other = make_plan(contents, styles, styles_per_content=3, seed=1)
    assert [p.key for p in other.pairs] != [p.key for p in plan.pairs]

    limited = make_plan(contents, styles, limit=5, seed=0)
    assert len(limited) == 5
    assert {p.key for p in limited.pairs} <= {p.key for p in make_plan(contents, styles).pairs}
    assert len({p.content_rel for p in limited.pairs}) > 1  # a random subset, not the first 5

    full = make_plan(contents, styles)
    shards = [full.shard(3, i) for i in range(3)]
    assert [p for shard in shards for p in shard] == full.pairs
    with pytest.raises(ConfigError, match="styles-per-content 99"):
        make_plan(contents, styles, styles_per_content=99)
    with pytest.raises(ConfigError, match="no such directory"):
        make_plan(contents.parent / "missing", styles)


# --------------------------------------------------------------------------- writer


def test_teach_writes_images_manifest_and_failures(tmp_path, folders):
    contents, styles = folders
    bad = add_bad_inputs(contents)
    teacher = BatchedFakeTeacher()
    out = tmp_path / "data"
    summary = teach(teacher, contents, styles, out, batch_size=4, show_progress=False)

    assert summary.pairs_in_shard == 6 * 2
    assert summary.written == 3 * 2 and summary.failed_pairs == 3 * 2 and summary.failed_inputs == 3
    assert "3 inputs unreadable" in summary.line()
    assert len(teacher.prepared) == 2  # each style prepared once
    assert teacher.batched_prepares == [1]  # art1 continues in the next batch: kept
    assert sum(teacher.batches) == 6 and max(teacher.batches) <= 4

    shard = out / "shard-00000-of-00001"
    records = manifest_lines(shard / "manifest.jsonl")
    assert len(records) == 6 and len({r["key"] for r in records}) == 6
    pngs = sorted(p.name for p in shard.glob("*.png"))
    assert pngs == sorted(f"{r['key']}.png" for r in records)
    for record in records:
        image = load_image(out / record["output"])
        assert tuple(image.shape) == (3, 32, 32)
        assert record["teacher"] == "fake" and record["teacher_config"] == teacher.config()
        assert record["model"] == {"model_id": "fake/model", "revision": "r1"}
        assert record["sizes"]["output"] == [32, 32]
        assert Path(record["content"]).is_file() and Path(record["style"]).is_file()
        assert record["shard"] == shard.name and record["seconds"] >= 0
    first = next(r for r in records if r["content_rel"] == "photo1.png")
    assert first["sizes"]["content"] == [53, 47]  # [width, height] of the source

    failures = manifest_lines(shard / "failures.jsonl")
    assert {Path(f["path"]).name for f in failures} == set(bad)
    for failure in failures:
        assert failure["role"] == "content"
        assert bad[Path(failure["path"]).name] in failure["reason"]

    plan = json.loads((out / "dataset.json").read_text())
    assert plan["pairs_planned"] == 12 and plan["teacher"] == "fake" and plan["num_shards"] == 1
    assert plan["teacher_config"] == teacher.config() and plan["seed"] == 0
    # dataset.json is written via mkstemp (0600): it must end up with the umask's mode
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out / "dataset.json").stat().st_mode) == 0o666 & ~umask

    # A rerun skips every finished pair and does not report failures twice.
    again = teach(FakeTeacher(), contents, styles, out, batch_size=4, show_progress=False)
    assert again.written == 0 and again.already_done == 6 and again.failed_pairs == 6
    assert len(manifest_lines(shard / "failures.jsonl")) == 3


def test_outputs_do_not_depend_on_batching(tmp_path, folders):
    contents, styles = folders
    teach(FakeTeacher(), contents, styles, tmp_path / "a", batch_size=1, show_progress=False)
    teach(FakeTeacher(), contents, styles, tmp_path / "b", batch_size=5, show_progress=False)
    for record in read_manifest(tmp_path / "a"):
        a = np.asarray(Image.open(tmp_path / "a" / record["output"]))
        b = np.asarray(Image.open(tmp_path / "b" / record["output"]))
        assert np.array_equal(a, b)


def test_a_failure_before_the_first_pair_releases_the_shard(tmp_path, folders, monkeypatch):
    """Once the shard's files are open, any failure closes them: the manifest lock is
    released, so the same process can teach into the same folder again."""
    contents, styles = folders

    def broken_progress(*args, **kwargs):
        raise RuntimeError("no terminal")

    monkeypatch.setattr(writer_module, "_progress", broken_progress)
    with pytest.raises(RuntimeError, match="no terminal"):
        teach(FakeTeacher(), contents, styles, tmp_path / "out", show_progress=False)
    monkeypatch.undo()
    summary = teach(FakeTeacher(), contents, styles, tmp_path / "out", show_progress=False)
    assert summary.written == summary.pairs_in_shard > 0


def test_resume_cuts_torn_line_and_redoes_orphan_image(tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    teach(FakeTeacher(), contents, styles, out, limit=4, show_progress=False)
    manifest = out / "shard-00000-of-00001" / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    torn_key = json.loads(lines[-1])["key"]
    orphan_key = json.loads(lines[-2])["key"]
    # A kill -9 in the middle of the last append, one after an image rename, and one
    # inside save_image (a temp file left behind).
    manifest.write_text("".join(lines[:-2]) + lines[-1][: len(lines[-1]) // 2])
    (out / "shard-00000-of-00001" / f".{orphan_key}.png.abc.tmp").write_bytes(b"partial")
    assert len(read_manifest(out)) == 2  # readers ignore the torn line

    teacher = FakeTeacher()
    summary = teach(teacher, contents, styles, out, limit=4, show_progress=False)
    assert summary.written == 2 and summary.already_done == 2
    records = manifest_lines(manifest)  # every line parses: the torn one was cut off
    assert sorted(r["key"] for r in records) == sorted(
        p.key for p in make_plan(contents, styles, limit=4).pairs
    )
    assert {torn_key, orphan_key} <= {r["key"] for r in records}
    assert not list(out.rglob("*.tmp"))


def test_jsonl_appender_rolls_back_a_failed_append(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    with JsonlAppender(path) as log:
        log.append({"key": "a"})

        def half_then_full(fd, data):
            import os

            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(writer_module, "_write_all", half_then_full)
        with pytest.raises(OSError):
            log.append({"key": "b" * 100})
    assert path.read_text() == '{"key":"a"}\n'


@pytest.mark.parametrize("where", ["image", "manifest"])
def test_full_disk_stops_with_one_line_error_and_intact_manifest(
    tmp_path, folders, monkeypatch, where
):
    contents, styles = folders
    out = tmp_path / "data"
    calls = {"n": 0}
    if where == "image":
        real = writer_module.save_image

        def failing(image, path):
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real(image, path)

        monkeypatch.setattr(writer_module, "save_image", failing)
    else:
        real = writer_module._write_all

        def failing(fd, data):
            calls["n"] += 1
            if calls["n"] > 2:
                import os

                os.write(fd, data[:10])
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data)

        monkeypatch.setattr(writer_module, "_write_all", failing)

    with pytest.raises(DatasetWriteError) as info:
        teach(FakeTeacher(), contents, styles, out, show_progress=False)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message
    assert "2 finished pairs" in message and "rerun" in message
    records = manifest_lines(out / "shard-00000-of-00001" / "manifest.jsonl")
    assert len(records) == 2
    assert all((out / r["output"]).is_file() for r in records)

    monkeypatch.undo()
    summary = teach(FakeTeacher(), contents, styles, out, show_progress=False)
    assert summary.already_done == 2 and summary.written == 4
    assert len(read_manifest(out)) == 6


def test_cli_reports_unwritable_output_in_one_line(tmp_path, folders, monkeypatch, capsys):
    contents, styles = folders

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "data"))

    monkeypatch.setattr(writer_module, "JsonlAppender", denied)
    code = main(
        ["teach", "--teacher", "texture", "--contents", str(contents), "--styles", str(styles),
         "--out", str(tmp_path / "data"), "--size", "32", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("styledistill teach: error: cannot write") and "Permission denied" in err
    assert "\n" not in err


def test_different_settings_are_refused_unless_overwrite(tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    teach(FakeTeacher(mix=0.5), contents, styles, out, limit=2, show_progress=False)
    with pytest.raises(
        ConfigError, match=r"already holds a different dataset \(teacher_config.mix"
    ):
        teach(FakeTeacher(mix=0.9), contents, styles, out, limit=2, show_progress=False)
    with pytest.raises(ConfigError, match="seed was 0, now 5"):
        teach(FakeTeacher(mix=0.5), contents, styles, out, limit=2, seed=5, show_progress=False)
    summary = teach(
        FakeTeacher(mix=0.9), contents, styles, out, limit=2, overwrite=True, show_progress=False
    )
    assert summary.written == 2
    assert {r["teacher_config"]["mix"] for r in read_manifest(out)} == {0.9}


def test_resume_with_another_shard_count_skips_pairs_done_elsewhere(tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    first = teach(
        FakeTeacher(), contents, styles, out, num_shards=2, shard_index=1, show_progress=False
    )
    assert first.written == 3
    second = teach(
        FakeTeacher(), contents, styles, out, num_shards=1, shard_index=0, show_progress=False
    )
    assert second.written == 3 and second.already_done == 3
    keys = [r["key"] for r in read_manifest(out)]
    assert sorted(keys) == sorted(p.key for p in make_plan(contents, styles).pairs)
    assert len(keys) == len(set(keys))


# --------------------------------------------------------------------------- readers


def test_split_keys_holds_out_contents_and_styles(tmp_path):
    records = [
        {"key": f"c{c}__s{s}", "content_rel": f"c{c}.png", "style_rel": f"s{s}.png"}
        for c in range(20)
        for s in range(10)
    ]
    train, val = split_keys(records, 0.2, seed=1)
    assert sorted(train + val) == sorted(r["key"] for r in records)
    train_contents = {k.split("__")[0] for k in train}
    train_styles = {k.split("__")[1] for k in train}
    val_only = [
        k
        for k in val
        if k.split("__")[0] not in train_contents and k.split("__")[1] not in train_styles
    ]
    assert val_only  # some validation pairs have both content and style unseen
    for key in val:
        content, style = key.split("__")
        assert content not in train_contents or style not in train_styles
    assert 0.1 < len(val) / len(records) < 0.3
    assert split_keys(records, 0.2, seed=1) == (train, val)
    assert split_keys(records, 0.2, seed=2) != (train, val)
    assert split_keys(records, 0.0) == ([r["key"] for r in records], [])


def test_dataset_info_and_cli(tmp_path, folders, capsys):
    contents, styles = folders
    add_bad_inputs(contents)
    out = tmp_path / "data"
    teach(FakeTeacher(), contents, styles, out, num_shards=2, shard_index=0, show_progress=False)
    info = dataset_info(out)
    assert info["pairs_planned"] == 12 and info["pairs_done"] == 3
    assert info["failures"] == len(read_failures(out)) == 3
    assert info["teachers"][0]["teacher"] == "fake" and info["teachers"][0]["pairs"] == 3
    assert info["output_sizes"] == {"32x32": 3} and info["disk_bytes"] > 0
    assert info["duplicate_keys"] == 0 and info["missing_outputs"] == 0

    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    # progress counts what can be made: shard 0 skipped 3 of its pairs (unreadable inputs)
    assert "3 done / 9 that can be made (33.3%); 12 planned, 3 skipped" in text
    assert "3 unreadable inputs" in text and "notes.png" in text
    assert "fake (3 pairs) model=fake/model@r1" in text and "mix=0.5" in text
    assert re.search(r"disk: +\d+\.\d KiB", text)
    assert "contents:  short side 40-50 px (median 47)" in text
    assert main(["dataset", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs_done"] == 3

    assert main(["dataset", "info", str(out), "--verify"]) == 0  # nothing damaged yet
    capsys.readouterr()
    broken = out / read_manifest(out)[0]["output"]
    broken.write_bytes(broken.read_bytes()[:40])
    assert main(["dataset", "info", str(out)]) == 0  # without --verify it is only a summary
    capsys.readouterr()
    assert main(["dataset", "info", str(out), "--verify"]) == 1  # a check fails loudly
    assert "1 output images do not decode" in capsys.readouterr().out
    assert main(["dataset", "info", str(tmp_path)]) == 2
    assert "not a styledistill dataset" in capsys.readouterr().err


class IdentityTeacher(FakeTeacher):
    def __init__(self) -> None:
        super().__init__(size=48, mix=0.0, noise=0.0)


def test_paired_dataset_same_crop_and_flip_on_content_and_target(tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    teach(IdentityTeacher(), contents, styles, out, show_progress=False)  # target == content

    dataset = PairedDataset(out, size=24, train=True)
    assert len(dataset) == 6
    reference = PairedDataset(out, size=24, train=False)[1][0]
    torch.manual_seed(0)
    crops = 0
    for _ in range(8):
        content, style, target = dataset[1]
        assert content.shape == style.shape == target.shape == (3, 24, 24)
        assert content.dtype == torch.float32
        assert torch.allclose(content, target, atol=1 / 255 + 1e-6)
        crops += int(not torch.allclose(content, reference, atol=0.02))
    assert crops >= 6

    whole = PairedDataset(out, size=24, train=True, crop_scale=(1.0, 1.0))  # flips only
    seen = set()
    for _ in range(12):
        content, _style, target = whole[1]
        assert torch.allclose(content, target, atol=1 / 255 + 1e-6)
        if torch.allclose(content, reference, atol=1e-5):
            seen.add("same")
        elif torch.allclose(content, reference.flip(-1), atol=1e-5):
            seen.add("flipped")
    assert seen == {"same", "flipped"}

    val = PairedDataset(out, size=24, train=False)
    a, b = val[2], val[2]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.allclose(a[0], a[2], atol=1 / 255 + 1e-6)

    # styles can come at the student's style resolution while content/target are cropped
    for train in (True, False):
        content, style, target = PairedDataset(out, size=16, train=train, style_size=40)[0]
        assert content.shape == target.shape == (3, 16, 16) and style.shape == (3, 40, 40)


def test_paired_dataset_finds_inputs_after_they_move(tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    teach(IdentityTeacher(), contents, styles, out, copy_inputs=True, limit=2, show_progress=False)
    copied = read_manifest(out)[0]
    assert (out / copied["content_input"]).is_file() and (out / copied["style_input"]).is_file()
    plain = tmp_path / "plain"
    teach(IdentityTeacher(), contents, styles, plain, limit=2, show_progress=False)

    moved = tmp_path / "moved"
    moved.mkdir()
    contents.rename(moved / "contents")
    styles.rename(moved / "styles")
    assert PairedDataset(out, size=16)[0][0].shape == (3, 16, 16)  # uses the copies
    with pytest.raises(Exception, match="not found"):
        PairedDataset(plain, size=16)[0]
    dataset = PairedDataset(
        plain, size=16, contents_dir=moved / "contents", styles_dir=moved / "styles"
    )
    keys = [r["key"] for r in read_manifest(plain)]
    subset = PairedDataset(
        plain, size=16, keys=keys[1:], contents_dir=moved / "contents", styles_dir=moved / "styles"
    )
    assert len(subset) == 1 and subset.keys == keys[1:]
    assert dataset[0][0].shape == (3, 16, 16)
    with pytest.raises(ConfigError, match="not in the dataset"):
        PairedDataset(plain, keys=["nope"])


# --------------------------------------------------------------------------- StyleID


def test_styleid_teacher_through_the_same_writer(
    save_sd_folder, styleid_teacher, make_images, tmp_path, capsys
):
    contents, styles = tmp_path / "c", tmp_path / "s"
    make_images(contents, 2, seed=5)
    make_images(styles, 2, seed=6)
    (styles / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    teacher = styleid_teacher(size=32, num_steps=3, model_id="tiny/random-sd")  # conftest.py
    out = tmp_path / "data"
    summary = teach(teacher, contents, styles, out, batch_size=3, show_progress=False)
    assert summary.written == 4 and summary.failed_inputs == 1 and summary.failed_pairs == 2
    records = read_manifest(out)
    assert len(records) == 4
    for record in records:
        assert record["teacher"] == "styleid"
        assert record["teacher_config"]["num_steps"] == 3
        assert record["model"]["model_id"] == "tiny/random-sd"
        assert tuple(load_image(out / record["output"]).shape) == (3, 32, 32)
    failure = read_failures(out)[0]
    assert failure["role"] == "style" and Path(failure["path"]).name == "broken.png"

    # The written image is what the teacher makes for that pair alone (seeded per pair).
    record = records[-1]
    from styledistill.images import center_crop_resize

    alone = teacher.stylize(
        [center_crop_resize(load_image(record["content"]), 32)],
        [center_crop_resize(load_image(record["style"]), 32)],
        seeds=[record["seed"]],
    )[0]
    written = load_image(out / record["output"])
    assert (written - alone).abs().max() <= 2 / 255

    # The same from the command line, loading the model from a diffusers folder.
    model = save_sd_folder(
        {"unet": teacher.unet, "vae": teacher.vae, "scheduler": teacher.scheduler},
        tmp_path / "tiny-sd",
    )
    (styles / "broken.png").unlink()
    args = [
        "teach", "--teacher", "styleid", "--model", str(model), "--device", "cpu",
        "--dtype", "fp32", "--size", "32", "--steps", "2", "--gamma", "0.5", "--tau", "1.2",
        "--clean-schedule", "--layers", ",".join(teacher.layers), "--batch-size", "2",
        "--contents", str(contents), "--styles", str(styles), "--out", str(tmp_path / "cli"),
        "--no-progress", "--limit", "3",
    ]  # fmt: skip
    assert main(args) == 0
    assert "3 pairs written" in capsys.readouterr().err
    records = read_manifest(tmp_path / "cli")
    assert len(records) == 3
    config = records[0]["teacher_config"]
    assert config["num_steps"] == 2 and config["gamma"] == 0.5 and config["tau"] == 1.2
    assert config["official_schedule"] is False and config["dtype"] == "float32"
    assert records[0]["model"] == {"model_id": str(model), "revision": None}


def test_one_writer_per_shard_and_out_outside_inputs(tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    teach(FakeTeacher(), contents, styles, out, limit=1, show_progress=False)
    manifest = out / "shard-00000-of-00001" / "manifest.jsonl"
    with (
        JsonlAppender(manifest, exclusive=True),
        pytest.raises(ConfigError, match="being written by another process"),
    ):
        teach(FakeTeacher(), contents, styles, out, limit=1, show_progress=False)
    assert (
        teach(FakeTeacher(), contents, styles, out, limit=1, show_progress=False).already_done == 1
    )
    with pytest.raises(ConfigError, match="inside --contents"):
        teach(FakeTeacher(), contents, styles, contents / "out", show_progress=False)


def test_new_input_images_extend_the_plan_with_a_warning(make_images, tmp_path, folders):
    contents, styles = folders
    out = tmp_path / "data"
    teach(FakeTeacher(), contents, styles, out, show_progress=False)
    make_images(contents, 1, seed=7, prefix="late")
    warnings: list[str] = []
    summary = teach(FakeTeacher(), contents, styles, out, show_progress=False, warn=warnings.append)
    assert summary.written == 2 and summary.already_done == 6
    assert len(warnings) == 1 and "plan now has 8 pairs (was 6)" in warnings[0]
    assert json.loads((out / "dataset.json").read_text())["pairs_planned"] == 8


def test_info_piped_into_a_reader_that_stops_early_is_not_an_error(tmp_path, folders):
    """`styledistill dataset info DIR | head -1`: a closed pipe must not print a traceback."""
    import subprocess
    import sys

    contents, styles = folders
    out = tmp_path / "data"
    teach(FakeTeacher(), contents, styles, out, show_progress=False)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is already gone: every write hits EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "styledistill", "dataset", "info", str(out), "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_manifest_lines_the_writer_did_not_make_are_not_pairs(tmp_path, folders):
    """A hand-edited or foreign manifest line (no output/content/style) must not crash training."""
    contents, styles = folders
    out = tmp_path / "data"
    teach(FakeTeacher(), contents, styles, out, show_progress=False)
    manifest = out / "shard-00000-of-00001" / "manifest.jsonl"
    before = len(read_manifest(out))
    with manifest.open("a") as fh:
        fh.write('{"key": "stray"}\nnot json at all\n')
    assert len(read_manifest(out)) == before
    assert "stray" not in {r["key"] for r in read_manifest(out)}
    dataset = PairedDataset(out, size=16)
    assert len(dataset) == before
    assert dataset[len(dataset) - 1][2].shape == (3, 16, 16)
