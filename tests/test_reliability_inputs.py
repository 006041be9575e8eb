"""Nothing lost, part two (issue 26): no silent overwrites, impossible sizes refused before
any work by the pixel budget, non-finite values refused, every bad manifest line counted,
exit statuses that mean something and messages in the CLI's words.

One test per row of the issue; each fails without its fix. Tiny models and images;
free memory is pinned (``pinned_memory``) so the budget's answers do not depend on the
machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import TintTeacher
from styledistill.cli import main
from test_reliability import (  # shared helpers (train_args: conftest.py)
    _image,
    _no_room,
    _one_line_error,
    make_folders,
    teach_tint,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

HUGE = "100000"  # --size no machine holds: 100000 x 100000 pixels


@pytest.fixture
def checkpoint(tiny_student_dir) -> Path:
    return tiny_student_dir


@pytest.fixture
def pinned_memory(monkeypatch):
    """Every device has exactly 8 GiB free, whatever this machine has."""
    import styledistill.budget as budget

    monkeypatch.setattr(budget, "available_memory", lambda device=None: (8 * 2**30, "in RAM"))


def _copy_checkpoint(checkpoint: Path, to: Path) -> Path:
    shutil.copytree(checkpoint, to)
    return to


def _must_not_load(monkeypatch) -> None:
    from styledistill.student import STTR

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded before the arguments were checked")

    monkeypatch.setattr(STTR, "from_pretrained", classmethod(refuse))


# --------------------------------------------------------------------------- data lost or changed


def test_export_replaces_existing_files_only_with_overwrite(
    checkpoint, tmp_path, capsys, monkeypatch
):
    import styledistill.export as export

    calls = []

    class Report:
        seconds = 0.0

        def lines(self):
            return ["wrote"]

    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: calls.append(a) or Report())
    mine = tmp_path / "exp" / "mine.onnx"
    mine.parent.mkdir()
    mine.write_text("my graph")
    (tmp_path / "exp" / "mine.style.onnx").write_text("my style graph")
    args = ["export", str(checkpoint), "--onnx", str(mine), "--no-verify"]
    assert main(args) == 2
    _one_line_error(capsys, "export", "mine.onnx", "already exists", "--overwrite")
    mine.unlink()  # the style graph alone is refused too
    assert main(args) == 2
    _one_line_error(capsys, "export", "mine.style.onnx", "already exists")
    assert not calls and (tmp_path / "exp" / "mine.style.onnx").read_text() == "my style graph"
    assert main([*args, "--overwrite"]) == 0 and len(calls) == 1


def test_samples_refuse_a_users_file_unless_overwrite(tmp_path, capsys):
    own = tmp_path / "smp" / "styles" / "ink_wash.png"
    _image(own, size=(20, 20), seed=3)
    before = own.read_bytes()
    args = ["samples", "--out", str(tmp_path / "smp"), "--no-contents", "--size", "16", "--quiet"]
    assert main([*args, "--styles", "pointillism,ink_wash"]) == 2
    _one_line_error(capsys, "samples", "ink_wash.png", "already exists", "--overwrite")
    assert own.read_bytes() == before
    assert not (tmp_path / "smp" / "styles" / "pointillism.png").exists()  # refused before any work
    assert main([*args, "--styles", "pointillism"]) == 0
    assert main([*args, "--styles", "ink_wash,pointillism", "--overwrite"]) == 0
    assert Image.open(own).size == (16, 16)


def test_train_refuses_an_out_inside_its_dataset(train_args, tmp_path, capsys):
    contents, styles = make_folders(tmp_path)
    data = tmp_path / "data"
    teach_tint(contents, styles, data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for out in (data, data / "run"):
        assert main(train_args(data, out)) == 2
        _one_line_error(capsys, "train", "--data", "outputs would be written among the inputs")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_nan_flags_settings_and_teacher_outputs_never_reach_a_dataset(tmp_path, capsys):
    from styledistill.dataset import teach
    from styledistill.errors import ConfigError, NonFiniteError
    from styledistill.teachers import create_teacher

    contents, styles = make_folders(tmp_path, 2, 2)
    args = ["teach", "--teacher", "texture", "--contents", str(contents), "--styles", str(styles)]
    for bad in (["--noise-sigma", "nan"], ["--teacher-option", "noise_sigma=NaN"]):
        assert main([*args, "--out", str(tmp_path / "data"), *bad]) == 2
        _one_line_error(capsys, "teach", "must be a finite number")
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigError, match="noise_sigma must be a finite number"):
        create_teacher("texture", noise_sigma=float("inf"))

    class NaNTeacher(TintTeacher):
        def stylize(self, contents, styles, **kwargs):
            return torch.full_like(super().stylize(contents, styles, **kwargs), float("nan"))

    out = tmp_path / "nan-data"
    with pytest.raises(NonFiniteError, match=r"tint teacher's output .* NaN"):
        teach(NaNTeacher(), contents, styles, out, show_progress=False)
    assert not list(out.glob("shard-*/*.png"))
    assert (out / "shard-00000-of-00001" / "manifest.jsonl").read_text() == ""


def test_non_finite_weights_and_outputs_are_errors_not_black_images(
    checkpoint, tiny_student, tmp_path, capsys
):
    from safetensors.torch import load_file, save_file

    from styledistill.errors import NonFiniteError
    from styledistill.student import Stylizer

    broken = _copy_checkpoint(checkpoint, tmp_path / "nan-student")
    state = load_file(str(broken / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, str(broken / "model.safetensors"))
    photo, out = _image(tmp_path / "cat.png"), tmp_path / "out.png"
    args = ["--content", str(photo), "--style", str(photo), "--out", str(out), "--size", "32"]
    assert main(["stylize", str(broken), *args, "--device", "cpu"]) == 2
    _one_line_error(capsys, "stylize", "model.safetensors", name, "NaN or infinite")
    assert not out.exists()
    model = tiny_student()
    with torch.no_grad():
        model.output.conv.bias.fill_(float("nan"))  # NaN made at run time
    stylizer = Stylizer(model, device="cpu", size=32, fold_batchnorm=False)
    with pytest.raises(NonFiniteError, match="student's output holds NaN"):
        stylizer(photo, photo)


# --------------------------------------------------------------------------- impossible sizes


@pytest.mark.usefixtures("pinned_memory")
def test_impossible_sizes_are_one_line_before_any_work(checkpoint, train_args, tmp_path, capsys):
    contents, styles = make_folders(tmp_path, 2, 2)
    data = tmp_path / "data"
    teach_tint(contents, styles, data)
    photo = _image(tmp_path / "cat.png")
    outs = {name: tmp_path / name for name in ("teach", "train", "report")}
    commands = {
        "stylize": ["stylize", str(checkpoint), "--content", str(photo), "--style", str(photo),
                    "--out", str(tmp_path / "o.png"), "--device", "cpu"],
        "export": ["export", str(checkpoint), "--onnx", str(tmp_path / "m.onnx")],
        "train": train_args(data, outs["train"]),
        "teach": ["teach", "--teacher", "texture", "--contents", str(contents), "--styles",
                  str(styles), "--out", str(outs["teach"])],
        "evaluate": ["evaluate", "--checkpoint", str(checkpoint), "--contents", str(contents),
                     "--styles", str(styles), "--out", str(outs["report"]), "--device", "cpu"],
    }  # fmt: skip
    for name, args in commands.items():
        size_at = args.index("--size") + 1 if "--size" in args else None
        args = [*args[:size_at], HUGE, *args[size_at + 1 :]] if size_at else [*args, "--size", HUGE]
        assert main(args) == 2, name
        _one_line_error(capsys, name, "needs about", "8.0 GiB free", "--max-pixels", "--size")
    assert not any(path.exists() for path in outs.values())
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "m.onnx").exists()


def test_the_budget_names_max_pixels_and_keeps_normal_sizes(
    checkpoint, tiny_student, tmp_path, pinned_memory
):
    from styledistill.budget import PixelBudgetError, check_memory, student_bytes_per_pixel
    from styledistill.student import Stylizer
    from styledistill.student.presets import preset_config
    from styledistill.teachers import create_teacher
    from styledistill.train import TrainConfig, train

    stylizer = Stylizer.from_pretrained(checkpoint, device="cpu", size=32)
    photo = _image(tmp_path / "cat.png")
    with pytest.raises(PixelBudgetError, match=r"needs about .* pass max_pixels=\d+ to try"):
        stylizer(photo, photo, size=int(HUGE))
    assert stylizer(photo, photo).size == (40, 30)
    tight = Stylizer.from_pretrained(checkpoint, device="cpu", size=32, max_pixels=500)
    with pytest.raises(PixelBudgetError, match=r"over the limit of max_pixels=500"):
        tight(photo, photo)
    with pytest.raises(PixelBudgetError, match="texture teacher"):
        create_teacher("texture", size=int(HUGE))
    with pytest.raises(PixelBudgetError, match="training"):
        train(TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), size=99968))
    assert not (tmp_path / "run").exists()
    # 512, 1024 and 2048 px fit in 8 GiB for both presets; so does the texture teacher at 1024
    for preset in ("sttr-small", "sttr-paper"):
        per_pixel = student_bytes_per_pixel(preset_config(preset).image_decoder_channels()[-1])
        for side in (512, 1024, 2048):
            check_memory("stylizing", (side, side), per_pixel * side * side)
    create_teacher("texture", size=1024)


def test_onnx_runner_refuses_a_size_that_cannot_fit(checkpoint, tmp_path, pinned_memory):
    pytest.importorskip("onnxruntime")
    from styledistill.budget import PixelBudgetError
    from styledistill.export import export_onnx
    from styledistill.onnx_runtime import OnnxStylizer

    with pytest.raises(PixelBudgetError, match="exporting"):
        export_onnx(checkpoint, tmp_path / "big.onnx", size=int(HUGE), verify=False)
    assert not (tmp_path / "big.onnx").exists()
    export_onnx(checkpoint, tmp_path / "m.onnx", size=64, verify=False)
    runner = OnnxStylizer(tmp_path / "m.onnx")
    photo = _image(tmp_path / "cat.png")
    with pytest.raises(PixelBudgetError, match="stylizing at 75008x100000"):
        runner(photo, photo, size=int(HUGE))
    assert runner(photo, photo).size == (40, 30)


def test_styleid_teacher_checks_its_budget(styleid_teacher, pinned_memory):
    pytest.importorskip("diffusers")
    from styledistill.budget import PixelBudgetError

    with pytest.raises(PixelBudgetError, match="styleid teacher at 8x99968x99968"):
        styleid_teacher(size=99968, batch_size=8)


# --------------------------------------------------------------------------- unclear messages


def test_config_errors_name_the_file_and_the_key(checkpoint, train_args, tmp_path, capsys):
    broken = _copy_checkpoint(checkpoint, tmp_path / "abc")
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "d_model": "abc"}))
    photo = _image(tmp_path / "cat.png")
    args = ["--content", str(photo), "--style", str(photo), "--out", str(tmp_path / "o.png")]
    assert main(["stylize", str(broken), *args]) == 2
    _one_line_error(capsys, "stylize", "config.json: d_model must be an integer, got 'abc'")
    contents, styles = make_folders(tmp_path, 2, 2)
    teach_tint(contents, styles, tmp_path / "data")
    out = tmp_path / "run"
    assert main(train_args(tmp_path / "data", out, "--model-option", 'd_model="abc"')) == 2
    _one_line_error(capsys, "train", "--model-option: d_model must be an integer")
    assert not out.exists()


def test_train_reads_local_weight_files_before_creating_out(train_args, tmp_path, capsys):
    contents, styles = make_folders(tmp_path, 2, 2)
    teach_tint(contents, styles, tmp_path / "data")
    (tmp_path / "text.png").write_text("hello")
    out = tmp_path / "run"
    for weights, fragment in (
        (tmp_path / "text.png", "not a PyTorch weights file"),
        (tmp_path / "nope.pt", "no such file"),
    ):
        args = train_args(tmp_path / "data", out)
        args[args.index("random")] = str(weights)
        assert main(args) == 2
        err = _one_line_error(capsys, "train", str(weights), fragment)
        assert "(101)" not in err
        assert not out.exists()


def test_space_errors_state_the_margin(checkpoint, tmp_path, capsys, monkeypatch):
    photo = _image(tmp_path / "cat.png", size=(400, 300))
    _no_room(monkeypatch, free=3 * 2**20)
    args = ["stylize", str(checkpoint), "--content", str(photo), "--style", str(photo)]
    assert main([*args, "--out", str(tmp_path / "o.png")]) == 2
    _one_line_error(capsys, "stylize", "needs about", "16.0 MiB safety margin", "3.0 MiB free")


def test_torch_advice_never_reaches_the_user(checkpoint, tmp_path, capsys):
    from styledistill.errors import CheckpointError
    from styledistill.train import load_checkpoint

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(checkpoint / "config.json", pickled / "config.json")
    (pickled / "model.pt").write_bytes(b"\x80\x04garbage, not a pickle of tensors")
    photo = _image(tmp_path / "cat.png")
    args = ["--content", str(photo), "--style", str(photo), "--out", str(tmp_path / "o.png")]
    assert main(["stylize", str(pickled), *args, "--allow-pickle"]) == 2
    err = _one_line_error(capsys, "stylize", "model.pt", "not a PyTorch weights file")
    assert "weights_only" not in err
    step = tmp_path / "run" / "checkpoints" / "step_0000001"
    step.mkdir(parents=True)
    for name in ("model", "optimizer"):
        shutil.copy(checkpoint / "model.safetensors", step / f"{name}.safetensors")
    (step / "training_state.pt").write_bytes(b"garbage")
    (step / "trainer.json").write_text("{}")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(step)
    assert "weights_only" not in str(info.value) and "not a PyTorch weights file" in str(info.value)


def test_path_errors_say_missing_file_or_folder(checkpoint, train_args, tmp_path, capsys):
    data_file = tmp_path / "dataset.json"
    data_file.write_text("{}")
    assert main(["dataset", "info", str(data_file)]) == 2
    _one_line_error(capsys, "dataset", "is a file, not a dataset folder")
    assert main(train_args(data_file, tmp_path / "run")) == 2
    _one_line_error(capsys, "train", "is a file, not a dataset folder")
    assert main(["dataset", "info", str(tmp_path / "nope")]) == 2
    _one_line_error(capsys, "dataset", "no such dataset folder")
    style = _image(tmp_path / "art.png")
    assert main(["stylize", str(checkpoint), "--video", str(tmp_path), "--style", str(style),
                 "--out", str(tmp_path / "v.mp4")]) == 2  # fmt: skip
    _one_line_error(capsys, "stylize", "is a folder, not a video file")


def test_image_limits_never_name_a_python_argument(checkpoint, tmp_path, capsys):
    from test_reliability import write_blank_png

    big = write_blank_png(tmp_path / "big.png", 9000, 8000)  # 72 Mpx: over the input limit
    args = ["--content", str(big), "--style", str(big), "--out", str(tmp_path / "o.png")]
    assert main(["stylize", str(checkpoint), *args, "--device", "cpu"]) == 2
    err = _one_line_error(capsys, "stylize", "over the limit of 64,000,000 pixels")
    assert "max_pixels" not in err


# --------------------------------------------------------------------------- exit status


def test_teach_that_makes_nothing_exits_non_zero(tmp_path, capsys):
    contents, styles = make_folders(tmp_path, 2, 2)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_text("not an image")
    base = ["teach", "--teacher", "texture", "--size", "32", "--no-progress"]
    runs = (
        ["--contents", str(broken), "--styles", str(styles), "--out", str(tmp_path / "d1")],
        ["--contents", str(contents), "--styles", str(styles), "--out", str(tmp_path / "d2"),
         "--min-side", HUGE],
    )  # fmt: skip
    for extra in runs:
        assert main([*base, *extra]) == 1
        assert "no pair could be made" in capsys.readouterr().err


def test_every_bad_manifest_line_is_counted_with_its_place(tmp_path, capsys):
    from styledistill.dataset import PairedDataset, dataset_info

    contents, styles = make_folders(tmp_path, 3, 3)
    data = tmp_path / "data"
    teach_tint(contents, styles, data)
    manifest = data / "shard-00000-of-00001" / "manifest.jsonl"
    with open(manifest, "a") as fh:
        fh.write('not json\n[1, 2]\n{"key": 5}\n')
    info = dataset_info(data)
    assert (info["pairs_done"], info["pairs_planned"], info["bad_lines"]) == (9, 9, 3)
    assert [t["teacher"] for t in info["teachers"]] == ["tint"]
    assert main(["dataset", "info", str(data), "--verify"]) == 1  # a check finds damage
    printed = capsys.readouterr().out
    assert "9 done / 9 planned (100.0%)" in printed and "None" not in printed
    assert "shard-00000-of-00001/manifest.jsonl line 10: not JSON" in printed
    assert "line 11: a JSON list, not an object" in printed and "line 12: no key" in printed
    skipped = PairedDataset(data, size=32, train=False).unreadable_pairs()  # train's report
    assert sorted(skipped) == [
        f"shard-00000-of-00001/manifest.jsonl line {n}" for n in (10, 11, 12)
    ]
    summary = teach_tint(contents, styles, data)  # a rerun says so too, and keeps them
    assert "3 manifest lines are not pair records" in summary.line()
    assert "manifest.jsonl line 10: not JSON" in summary.line()


def test_video_flags_are_refused_for_images(checkpoint, tmp_path, capsys):
    photo = _image(tmp_path / "cat.png")
    args = ["stylize", str(checkpoint), "--content", str(photo), "--style", str(photo),
            "--out", str(tmp_path / "o.png")]  # fmt: skip
    assert main([*args, "--flicker-blend", "0.5"]) == 2
    _one_line_error(capsys, "stylize", "--flicker-blend", "used with --video only")
    assert not (tmp_path / "o.png").exists()


def test_export_and_output_settings_are_checked_before_the_model_loads(
    checkpoint, tmp_path, capsys, monkeypatch
):
    _must_not_load(monkeypatch)
    onnx = str(tmp_path / "m.onnx")
    for extra, fragment in (
        (["--onnx", onnx, "--opset", "99"], "--opset 99"),
        (["--onnx", onnx, "--size", "0"], "--size 0"),
        (["--onnx", str(tmp_path / "m.bin")], "must end in .onnx"),
    ):
        assert main(["export", str(checkpoint), *extra]) == 2
        _one_line_error(capsys, "export", fragment)
    photo = _image(tmp_path / "cat.png")
    args = ["--content", str(photo), "--style", str(photo), "--out", str(tmp_path / "x.txt")]
    assert main(["stylize", str(checkpoint), *args]) == 2
    _one_line_error(capsys, "stylize", "--out", "x.txt", "cannot save with suffix '.txt'")


def test_cli_refuses_nan_in_any_float_flag(checkpoint, tmp_path, capsys):
    photo = _image(tmp_path / "cat.png")
    args = ["stylize", str(checkpoint), "--video", str(photo), "--style", str(photo)]
    assert main([*args, "--flicker-threshold", "inf"]) == 2
    _one_line_error(capsys, "stylize", "--flicker-threshold inf: must be a finite number")
