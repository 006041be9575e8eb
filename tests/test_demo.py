"""The offline demo end to end, on a tiny plan: every stage runs and a rerun reuses them."""

from __future__ import annotations

import json

import pytest
import torch

from styledistill.demo import DemoPlan, run_demo

TINY = DemoPlan(
    size=64,
    crops_per_photo=1,
    style_seeds=(0,),
    styles_per_content=2,
    train_size=64,
    train_steps=4,
    train_minutes=2.0,
    batch_size=2,
    lr=3e-4,
    eval_every=2,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_demo_runs_every_stage_and_reuses_them(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, plan=TINY, progress=False)
    assert result.report.is_file()
    html = result.report.read_text()
    assert "<img" in html and "student" in html and "teacher" in html
    assert (result.student / "config.json").is_file()
    assert (result.student / "model.safetensors").is_file()
    assert result.pairs == 10  # 5 training photos x 2 styles each
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["protocol"]["n_pairs"] == 4  # 1 held-out photo x 4 held-out styles
    psnrs = [pair["fidelity"]["psnr"] for pair in _per_pair(out)]
    assert metrics["fidelity"]["psnr"] == pytest.approx(sum(psnrs) / len(psnrs), rel=1e-6)
    summary = json.loads((out / "demo.json").read_text())
    assert summary["plan"]["size"] == 64
    # the distillation score: every row, and "closed" as its definition says
    distill = json.loads((out / "report" / "distillation.json").read_text())
    assert distill["pairs"] == 4 and (out / "report" / "distillation.png").is_file()
    rows = distill["rows"]
    assert list(rows) == ["content", "hist-matched", "student", "teacher re-run"]
    for metric in ("feature", "style"):
        base, floor = rows["hist-matched"][metric], rows["teacher re-run"][metric]
        expected = (base - rows["student"][metric]) / (base - floor)
        assert distill["closed"]["student"][metric] == pytest.approx(expected)
    assert rows["content"]["feature"] > rows["teacher re-run"]["feature"]

    weights = (result.student / "model.safetensors").read_bytes()
    again = run_demo(out, plan=TINY, progress=False)
    assert again.pairs == 10
    assert (again.student / "model.safetensors").read_bytes() == weights  # reused, not retrained


def _per_pair(out):
    path = out / "report" / "pairs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_demo_on_the_users_own_folders(tmp_path):
    from styledistill.images import save_image
    from styledistill.samples import generate_style, sample_contents

    contents, styles = tmp_path / "photos", tmp_path / "paintings"
    for name, image in list(sample_contents(96).items())[:5]:
        save_image(image, contents / f"{name}.png")
    for index, name in enumerate(("swirling_flow", "pointillism", "ink_wash")):
        save_image(generate_style(name, 96, index), styles / f"{name}.png")
    before = sorted(p.name for p in contents.iterdir())
    out = tmp_path / "demo"
    result = run_demo(out, plan=TINY, progress=False, contents=contents, styles=styles)
    held_contents = list((out / "inputs" / "heldout" / "contents").iterdir())
    held_styles = list((out / "inputs" / "heldout" / "styles").iterdir())
    assert len(held_contents) == 1 and len(held_styles) == 1  # a fifth, at least one
    assert result.pairs == 4 * 2  # 4 training photos x 2 styles each
    assert json.loads((out / "report" / "distillation.json").read_text())["pairs"] == 1
    assert sorted(p.name for p in contents.iterdir()) == before  # inputs copied, not moved


def test_demo_folder_errors_are_one_line(tmp_path):
    from styledistill.errors import ConfigError
    from styledistill.images import save_image

    save_image(torch.rand(3, 40, 40), tmp_path / "one" / "a.png")
    with pytest.raises(ConfigError, match="needs at least 2 images"):
        run_demo(tmp_path / "d", plan=TINY, contents=tmp_path / "one", styles=tmp_path / "one")
    assert not (tmp_path / "d").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match="both --contents and --styles"):
        run_demo(tmp_path / "d", plan=TINY, contents=tmp_path / "one")
