"""Distillation losses: each term, VGG weight loading, and the no-weights policy."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from styledistill.errors import CheckpointError, ConfigError
from styledistill.losses import (
    VGG_LAYERS,
    DistillationLoss,
    LossWeights,
    VGGFeatures,
    build_vgg19_features,
    load_vgg19_features,
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_vgg_layer_indices_match_torchvision():
    features = build_vgg19_features()
    for name, index in VGG_LAYERS.items():
        assert isinstance(features[index], torch.nn.ReLU), name
        assert isinstance(features[index - 1], torch.nn.Conv2d), name
    # relu<k>_1 follows a pooling layer (or the input) and ends block k's first conv
    assert features[VGG_LAYERS["relu4_1"] - 1].out_channels == 512
    assert features[VGG_LAYERS["relu3_1"] - 1].in_channels == 128


def test_pixel_only_is_l1_and_needs_no_vgg():
    loss = DistillationLoss(LossWeights(pixel=1.0, perceptual=0.0))
    a, b = images(0), images(1)
    total, terms = loss(a, b)
    assert set(terms) == {"pixel"}
    assert float(total) == pytest.approx(float(F.l1_loss(a, b)))
    assert loss.vgg is None


def test_vgg_terms_are_disabled_with_a_warning_without_weights():
    with pytest.warns(UserWarning, match="perceptual, style disabled: no VGG19 weights"):
        loss = DistillationLoss(LossWeights(pixel=1.0, perceptual=0.1, style=1.0))
    assert loss.active_terms() == ["pixel"]
    assert set(loss.disabled) == {"perceptual", "style"}
    _, terms = loss(images(0), images(1), style=images(2))
    assert set(terms) == {"pixel"}


def test_all_terms_off_is_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError, match="every loss term is off"):
            DistillationLoss(LossWeights(pixel=0.0, perceptual=1.0))
    with pytest.raises(ConfigError, match="pixel=-1"):
        LossWeights(pixel=-1.0)


def test_all_terms_with_random_vgg_have_gradients_and_vanish_at_the_target():
    weights = LossWeights(pixel=1.0, perceptual=0.5, content=0.2, style=0.3)
    loss = DistillationLoss(weights, allow_random_vgg=True)
    content, style, teacher = images(0), images(1), images(2)
    student = images(3).requires_grad_(True)
    total, terms = loss(student, teacher, content, style)
    assert set(terms) == {"pixel", "perceptual", "content", "style"}
    expected = sum(getattr(weights, name) * float(value.detach()) for name, value in terms.items())
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    # student == teacher: pixel and perceptual vanish; student == content: content vanishes
    _, same = loss(teacher, teacher, content, style)
    assert float(same["pixel"]) == 0.0 and float(same["perceptual"]) == pytest.approx(0.0, abs=1e-6)
    _, as_content = loss(content, teacher, content, style)
    assert float(as_content["content"]) == pytest.approx(0.0, abs=1e-6)
    _, as_style = loss(style, teacher, content, style)
    assert float(as_style["style"]) == pytest.approx(0.0, abs=1e-6)
    assert float(as_content["style"]) > 0


def test_one_vgg_pass_for_targets_matches_separate_passes():
    loss = DistillationLoss(
        LossWeights(pixel=0.0, perceptual=1.0, content=1.0, style=1.0), allow_random_vgg=True
    )
    content, style, teacher, student = images(0), images(1), images(2), images(3)
    _, joint = loss(student, teacher, content, style)
    vgg = loss.vgg
    s, t, c = vgg(student), vgg(teacher), vgg(content)
    perceptual = torch.stack([F.l1_loss(s[k], t[k]) for k in loss.perceptual_layers]).mean()
    assert float(joint["perceptual"]) == pytest.approx(float(perceptual), rel=1e-4)
    assert float(joint["content"]) == pytest.approx(
        float(F.mse_loss(s["relu4_1"], c["relu4_1"])), rel=1e-4
    )


def test_vgg_weights_from_a_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = build_vgg19_features()
    # a full torchvision-style state dict ("features.N.*") in safetensors
    save_file(
        {f"features.{k}": v for k, v in reference.state_dict().items()},
        str(tmp_path / "vgg.safetensors"),
    )
    # a features-only state dict in a torch file
    torch.save(reference.state_dict(), tmp_path / "vgg.pth")
    for name in ("vgg.safetensors", "vgg.pth"):
        loaded = load_vgg19_features(tmp_path / name)
        for key, value in reference.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value)
    loss = DistillationLoss(LossWeights(perceptual=1.0), vgg_weights=tmp_path / "vgg.safetensors")
    assert loss.active_terms() == ["pixel", "perceptual"]
    x = images(0)
    ours = loss.vgg(x)["relu2_1"]
    expected = VGGFeatures(reference, ["relu2_1"])(x)["relu2_1"]
    torch.testing.assert_close(ours, expected)


def test_bad_vgg_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        DistillationLoss(LossWeights(perceptual=1.0), vgg_weights=tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_vgg19_features(tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"not a VGG19 state dict|shape"):
        load_vgg19_features(tmp_path / "wrong.pth")
