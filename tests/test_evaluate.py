"""``evaluate`` end to end on a tiny saved student + the texture teacher, 2 contents x 2
styles made here, with random-weight metric networks saved as real weight files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TEXTURE
from styledistill.cli import main
from styledistill.evaluation import EvaluationSettings, evaluate
from styledistill.images import load_image, save_image

SIZE = 80  # >= 75 so the Inception-v3 trunk accepts it


@pytest.fixture(scope="module")
def workspace_data(tiny_student, tmp_path_factory) -> dict:
    from torchvision.models import alexnet, inception_v3
    from torchvision.models.vgg import cfgs, make_layers

    from styledistill.metrics.lpips import ALEX_CHANNELS

    root = tmp_path_factory.mktemp("evaluate")
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 96)
    for i in range(2):
        content = torch.rand(3, 90, 120, generator=generator) * 0.3
        content[:, :, : 40 + 30 * i] += 0.6  # a bright block: some structure to keep
        save_image(content.clamp(0, 1), root / "contents" / f"photo{i}.png")
        style = torch.stack(
            [
                ramp[None].expand(96, 96) * (0.5 + i / 2),
                ramp[:, None].expand(96, 96),
                torch.rand(96, 96, generator=generator),
            ]
        )
        save_image(style, root / "styles" / f"painting{i}.jpg")

    tiny_student().save_pretrained(root / "student")  # conftest.py

    weights = root / "weights"
    weights.mkdir()
    network = inception_v3(weights=None, aux_logits=False, init_weights=False)
    # calibrate BatchNorm on random images so random-weight features do not collapse
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        network.train()(torch.rand(6, 3, SIZE, SIZE, generator=generator))
    inception = {k: v for k, v in network.state_dict().items() if not k.startswith("fc.")}
    inception["fc1.weight"], inception["fc1.bias"] = torch.randn(3, 2048), torch.zeros(3)
    torch.save(inception, weights / "art_inception.pth")
    trunk = {
        k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")
    }
    torch.save(trunk, weights / "alexnet-owt-7be5be79.pth")
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(ALEX_CHANNELS)},
        weights / "alex.pth",
    )
    vgg = make_layers(cfgs["E"]).state_dict()
    torch.save(
        {f"features.{k}": v for k, v in vgg.items() if int(k.split(".")[0]) < 12},
        weights / "vgg19-dcbb9e9d.pth",
    )
    network.fc = torch.nn.Identity()  # kept as the independent FID reference network
    return {"root": root, "inception": network.eval()}


@pytest.fixture
def workspace(workspace_data) -> Path:
    return workspace_data["root"]


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path, monkeypatch):
    """A developer's cached torchvision weights must not change what these tests see."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def test_evaluate_teacher_and_student_with_all_metrics(workspace, workspace_data, tmp_path):
    from styledistill.metrics.histogram import image_histogram_distance

    out = tmp_path / "report"
    results = evaluate(
        EvaluationSettings(
            contents=workspace / "contents",
            styles=workspace / "styles",
            out=out,
            checkpoint=workspace / "student",
            teacher="texture",
            teacher_options=TINY_TEXTURE,
            weights_dir=workspace / "weights",
            size=SIZE,
            metric_size=SIZE,
            device="cpu",
            progress=False,
        )
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == results["metrics"]
    assert set(saved["methods"]) == {"teacher", "student"}
    for method in ("teacher", "student"):
        row = saved["metrics"][method]
        for key in ("artfid", "fid", "lpips", "cfsd", "histogram"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (method, key)
        assert row["artfid"] == pytest.approx((1 + row["lpips"]) * (1 + row["fid"]))
        assert 0 <= row["histogram"] <= 1
    assert saved["skipped"] == {}
    assert set(saved["fidelity"]) == {"psnr", "ssim", "lpips"}
    assert saved["timing"]["teacher_over_student"] > 0
    assert saved["protocol"]["n_pairs"] == 4
    assert set(saved["per_style"]) == {"painting0", "painting1"}
    assert saved["per_style"]["painting0"]["fidelity"]["ssim"] <= 1
    assert all(len(info["sha256"]) == 64 for info in saved["weights"].values())

    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 4
    images = sorted((out / "images" / "teacher").glob("*.png"))
    assert [p.name for p in images] == [
        "photo0__painting0.png",
        "photo0__painting1.png",
        "photo1__painting0.png",
        "photo1__painting1.png",
    ]
    assert len(list((out / "images" / "student").glob("*.png"))) == 4

    # recompute FID (torchvision's network, textbook formula) and one histogram distance
    # from the saved files
    network = workspace_data["inception"]
    stylized = [
        load_image(out / "images" / "student" / f"photo{c}__painting{s}.png")
        for s in range(2)
        for c in range(2)
    ]
    from styledistill.images import center_crop_resize

    styles = [
        center_crop_resize(load_image(workspace / "styles" / f"painting{s}.jpg"), SIZE)
        for s in range(2)
        for _ in range(2)
    ]
    with torch.no_grad():
        feats_stylized = network(torch.stack(stylized)).double().numpy()
        feats_style = network(torch.stack(styles)).double().numpy()
    mu1, mu2 = feats_stylized.mean(0), feats_style.mean(0)
    cross = (feats_stylized - mu1) @ (feats_style - mu2).T / 3  # N - 1 = 3
    eig = np.linalg.eigvals(cross @ cross.T).real  # nonzero eigenvalues of Σ1 Σ2
    expected_fid = float(
        ((mu1 - mu2) ** 2).sum()
        + np.trace(np.cov(feats_stylized, rowvar=False))
        + np.trace(np.cov(feats_style, rowvar=False))
        - 2 * np.sqrt(np.clip(eig, 0, None)).sum()
    )
    assert expected_fid > 1e-3  # calibrated BN: features carry the images, FID is not ~0
    assert saved["metrics"]["student"]["fid"] == pytest.approx(expected_fid, rel=1e-4)
    hist = image_histogram_distance(stylized[0][None], styles[0][None], size=None)  # < 256 px
    first = next(p for p in pairs if p["content"] == "photo0" and p["style"] == "painting0")
    assert first["student"]["histogram"] == pytest.approx(float(hist[0]), rel=1e-4)

    html = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in html
    assert "ArtFID" in html and "StyleID (paper)" in html and "painting1" in html
    assert "Every metric ran" in html
    assert (out / "grid.png").is_file()


def test_evaluate_cli_offline_skips_weight_metrics(workspace, tmp_path, capsys):
    out = tmp_path / "offline"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(workspace / "student"),
            "--contents",
            str(workspace / "contents"),
            "--styles",
            str(workspace / "styles"),
            "--out",
            str(out),
            "--size",
            "64",
            "--device",
            "cpu",
            "--limit-styles",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "skipped fid:" in printed and "art_inception.pth" in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["skipped"]) == {"fid", "lpips", "cfsd", "artfid", "fidelity"}
    assert "huggingface.co/matthias-wright/art_inception" in saved["skipped"]["fid"]
    student = saved["metrics"]["student"]
    assert student["fid"] is None and student["lpips"] is None
    assert 0 <= student["histogram"] <= 1
    assert saved["weights"]["vgg19"]["missing"]
    html = (out / "report.html").read_text()
    assert "Skipped metrics" in html and "vgg19-dcbb9e9d.pth" in html
    assert "data:image/jpeg;base64," in html


def test_evaluate_skips_unreadable_inputs(workspace, tmp_path, capsys):
    import shutil

    contents = tmp_path / "contents"
    shutil.copytree(workspace / "contents", contents)
    (contents / "zero.jpg").write_bytes(b"")
    (contents / "notes.png").write_text("not an image\n")
    args = ["evaluate", "--checkpoint", str(workspace / "student"), "--styles"]
    args += [str(workspace / "styles"), "--size", "64", "--device", "cpu", "--quiet"]
    code = main([*args, "--contents", str(contents), "--out", str(tmp_path / "r")])
    assert code == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(warned) == 2
    assert any("zero.jpg" in line for line in warned) and any(
        "notes.png" in line for line in warned
    )
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["protocol"]["n_contents"] == 2
    skipped = {Path(s["path"]).name: s["reason"] for s in saved["skipped_inputs"]}
    assert set(skipped) == {"zero.jpg", "notes.png"} and all(skipped.values())
    assert "zero.jpg" in (tmp_path / "r" / "report.html").read_text()

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "zero.jpg").write_bytes(b"")
    code = main([*args, "--contents", str(only_bad), "--out", str(tmp_path / "r2")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--contents {only_bad}: none of the 1 image file(s) could be read" in err


def test_evaluate_cli_errors(workspace, tmp_path, capsys):
    args = [
        "evaluate",
        "--contents",
        str(workspace / "contents"),
        "--styles",
        str(workspace / "styles"),
        "--out",
        str(tmp_path / "x"),
        "--device",
        "cpu",
    ]
    assert main(args) == 2
    assert "give --checkpoint (student) and/or --teacher" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = [
        "evaluate",
        "--teacher",
        "texture",
        "--contents",
        str(empty),
        "--styles",
        str(workspace / "styles"),
        "--out",
        str(tmp_path / "y"),
        "--device",
        "cpu",
    ]
    assert main(bad) == 2
    assert f"--contents {empty}: no images found" in capsys.readouterr().err
    missing = [
        "evaluate",
        "--teacher",
        "texture",
        "--contents",
        str(workspace / "contents"),
        "--styles",
        str(workspace / "styles"),
        "--out",
        str(tmp_path / "z"),
        "--weights-dir",
        str(tmp_path / "nope"),
    ]
    assert main(missing) == 2
    assert "no such directory" in capsys.readouterr().err


def test_evaluate_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--weights-dir" in text and "art_inception.pth" in text


def _reference_histogram_loss(image: np.ndarray, reference: np.ndarray, bins: int = 64) -> float:
    """HistoGAN's RGB-uv histogram loss written from its definition, in float64 numpy.

    For each channel c: a 2-D histogram of (log I_c/I_o1, log I_c/I_o2) over the two other
    channels in RGB order, inverse-quadratic kernel (sigma 0.02) on bins over [-3, 3],
    pixels weighted by their intensity; then the Hellinger distance.
    """

    def histogram(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(3, -1).astype(np.float64)
        logs = np.log(flat + 1e-6)
        weight = np.sqrt((flat**2).sum(0) + 1e-6)
        centres = np.linspace(-3.0, 3.0, bins)
        out = np.zeros((3, bins, bins))
        for c, (o1, o2) in enumerate([(1, 2), (0, 2), (0, 1)]):
            u = (logs[c] - logs[o1])[:, None] - centres
            v = (logs[c] - logs[o2])[:, None] - centres
            ku, kv = 1 / (1 + (u / 0.02) ** 2), 1 / (1 + (v / 0.02) ** 2)
            out[c] = np.einsum("p,pi,pj->ij", weight, ku, kv)
        return out / (out.sum() + 1e-6)

    diff = np.sqrt(histogram(image)) - np.sqrt(histogram(reference))
    return float(np.sqrt((diff**2).sum()) / np.sqrt(2.0))


def test_histogram_loss_is_scored_against_the_style_by_an_independent_reference(
    workspace, tmp_path
):
    """Each pair's histogram loss equals a from-the-definition numpy reference computed
    between the saved output and its *style* (not its content), for every pair."""
    from styledistill.images import center_crop_resize

    out = tmp_path / "report"
    evaluate(
        EvaluationSettings(
            contents=workspace / "contents",
            styles=workspace / "styles",
            out=out,
            teacher="texture",
            teacher_options=TINY_TEXTURE,
            weights_dir=None,  # no metric networks: this test needs the histogram only
            size=SIZE,
            device="cpu",
            progress=False,
        )
    )
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 4
    for pair in pairs:
        name = f"{pair['content']}__{pair['style']}.png"
        stylized = load_image(out / "images" / "teacher" / name).numpy()
        style = center_crop_resize(load_image(workspace / "styles" / f"{pair['style']}.jpg"), SIZE)
        content = center_crop_resize(
            load_image(workspace / "contents" / f"{pair['content']}.png"), SIZE
        )
        to_style = _reference_histogram_loss(stylized, style.numpy())
        to_content = _reference_histogram_loss(stylized, content.numpy())
        assert abs(to_style - to_content) > 0.01  # the check below can tell them apart
        assert pair["teacher"]["histogram"] == pytest.approx(to_style, rel=1e-4, abs=1e-6)
    scored = json.loads((out / "metrics.json").read_text())["metrics"]["teacher"]["histogram"]
    assert scored == pytest.approx(np.mean([p["teacher"]["histogram"] for p in pairs]))


def test_evaluate_with_a_styleid_teacher_object(workspace, tmp_path, styleid_teacher):
    """The diffusion teacher goes through the same protocol (tiny random SD components)."""
    teacher = styleid_teacher(size=64, num_steps=2)  # conftest.py
    results = evaluate(
        EvaluationSettings(
            contents=workspace / "contents",
            styles=workspace / "styles",
            out=tmp_path / "sid",
            teacher=teacher,
            size=64,
            metric_size=64,
            limit_styles=1,
            limit_contents=1,
            device="cpu",
            progress=False,
            search_hub_cache=False,
        )
    )
    assert results["methods"]["teacher"]["name"] == "styleid"
    assert results["methods"]["teacher"]["config"]["num_steps"] == 2
    assert 0 <= results["metrics"]["teacher"]["histogram"] <= 1
    assert results["timing"]["teacher"]["pairs"] == 1
    assert len(list((tmp_path / "sid" / "images" / "teacher").glob("*.png"))) == 1
