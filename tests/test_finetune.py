"""Fine-tuning: ``train --init`` starts from a saved student, ``--val-data`` validates on
another dataset, and pretrained students load by name."""

from __future__ import annotations

import json

import pytest
import torch

from styledistill.cli import main
from styledistill.errors import CheckpointError
from styledistill.hub import list_pretrained, resolve_student_folder
from styledistill.student import STTR
from styledistill.train import train
from test_train import make_dataset, read_log, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("finetune")
    return make_dataset(root / "a", seed=0), make_dataset(root / "b", contents=2, seed=5)


def test_init_starts_from_the_saved_student_and_keeps_its_architecture(two_datasets, tmp_path):
    data, _ = two_datasets
    base = train(tiny_config(data, tmp_path / "base", steps=4))
    saved = STTR.from_pretrained(base)
    # lr so small that nothing moves: the run's student is the saved one, architecture
    # included, although no model options are given
    tuned = train(
        tiny_config(
            data,
            tmp_path / "tuned",
            init=str(base),
            model_overrides={},
            steps=2,
            lr=1e-12,
            backbone_lr=1e-12,
            warmup=0,
            ema=0.0,
        )
    )
    model = STTR.from_pretrained(tuned)
    assert model.config.to_dict() == saved.config.to_dict()
    for (name, a), (_, b) in zip(model.named_parameters(), saved.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_init_refusals_are_one_line(two_datasets, tmp_path, capsys, train_args):
    data, _ = two_datasets
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1"]
    assert main([*args, "--init", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing" in err and "\n" not in err
    base = train(tiny_config(data, tmp_path / "base", steps=1))
    assert main([*args, "--init", str(base), "--model-option", "d_model=32"]) == 2
    assert "--model-option does not apply" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the folder is made


def test_val_data_validates_on_another_dataset_and_trains_on_all_of_data(two_datasets, tmp_path):
    data, val = two_datasets
    run = tmp_path / "run"
    train(tiny_config(data, run, steps=4, val_data=str(val), eval_every=4))
    start = next(r for r in read_log(run) if r["type"] == "start")
    assert start["train_pairs"] == 9  # every pair of --data trains
    assert start["val_pairs"] == 6  # every pair of --val-data validates
    evals = [r for r in read_log(run) if r["type"] == "eval"]
    assert evals and all(torch.isfinite(torch.tensor(r["psnr"])) for r in evals)


def test_pretrained_students_load_by_name_and_unknown_names_are_one_line():
    names = list_pretrained()
    assert "styleid-small" in names
    folder = resolve_student_folder("styleid-small")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "sttr"
    assert (folder / "model.safetensors").stat().st_size > 1_000_000  # real weights
    assert "StyleID" in (folder / "README.md").read_text()
    with pytest.raises(CheckpointError, match="not a pretrained student"):
        resolve_student_folder("styleid-huge")


def test_the_pretrained_student_stylizes_by_name(tmp_path, content_and_style, capsys):
    content, style = content_and_style(tmp_path)
    out = tmp_path / "out.png"
    code = main(
        [
            "stylize",
            "--student",
            "styleid-small",
            "--content",
            str(content),
            "--style",
            str(style),
            "--out",
            str(out),
            "--size",
            "64",
        ]
    )
    assert code == 0 and out.is_file()
    from styledistill.images import load_image

    image = load_image(out)
    assert image.shape[0] == 3 and float(image.std()) > 0.02 and float(image.mean()) < 0.98
