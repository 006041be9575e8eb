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


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    assert metrics["fidelity"]["psnr"] > 0
    summary = json.loads((out / "demo.json").read_text())
    assert summary["plan"]["size"] == 64

    weights = (result.student / "model.safetensors").read_bytes()
    again = run_demo(out, plan=TINY, progress=False)
    assert again.pairs == 10
    assert (again.student / "model.safetensors").read_bytes() == weights  # reused, not retrained
