"""RGB-uv histogram (HistoGAN) and Hellinger distance against a float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from styledistill.metrics import histogram_distance, rgb_uv_histogram
from styledistill.metrics.histogram import image_histogram_distance


def reference_histogram(image: np.ndarray, bins: int, sigma: float = 0.02) -> np.ndarray:
    """Independent float64 implementation of HistoGAN's RGBuvHistBlock (no resizing)."""
    eps = 1e-6
    pixels = np.clip(image.reshape(3, -1).astype(np.float64), 0, 1)
    intensity = np.sqrt((pixels**2).sum(0) + eps)
    logs = np.log(pixels + eps)
    centres = np.linspace(-3, 3, bins)
    hist = np.zeros((3, bins, bins))
    for c, (o1, o2) in enumerate([(1, 2), (0, 2), (0, 1)]):
        u = logs[c] - logs[o1]
        v = logs[c] - logs[o2]
        ku = 1.0 / (1.0 + ((u[:, None] - centres[None]) / sigma) ** 2)
        kv = 1.0 / (1.0 + ((v[:, None] - centres[None]) / sigma) ** 2)
        hist[c] = (ku * intensity[:, None]).T @ kv
    return hist / (hist.sum() + eps)


def reference_hellinger(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((np.sqrt(a) - np.sqrt(b)) ** 2).sum()) / np.sqrt(2.0))


def random_images(count: int, side: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    smooth = torch.rand(count, 3, side // 4, side // 4, generator=generator)
    images = torch.nn.functional.interpolate(smooth, size=(side, side), mode="bilinear")
    return (images * torch.rand(count, 3, 1, 1, generator=generator)).clamp(0, 1)


@pytest.mark.parametrize("bins", [16, 64])
def test_histogram_matches_float64_reference(bins: int) -> None:
    images = random_images(2, 32, seed=bins)
    ours = rgb_uv_histogram(images, bins=bins, size=None)
    assert ours.shape == (2, 3, bins, bins)
    for k in range(2):
        expected = reference_histogram(images[k].numpy(), bins)
        np.testing.assert_allclose(ours[k].double().numpy(), expected, atol=2e-6, rtol=1e-3)
        assert ours[k].sum().item() == pytest.approx(1.0, abs=1e-4)


def test_hellinger_matches_reference_and_bounds() -> None:
    images = random_images(3, 32, seed=5)
    hists = rgb_uv_histogram(images, size=None)
    dist = histogram_distance(hists[:2], hists[1:])
    for k in range(2):
        expected = reference_hellinger(
            reference_histogram(images[k].numpy(), 64),
            reference_histogram(images[k + 1].numpy(), 64),
        )
        assert dist[k].item() == pytest.approx(expected, abs=1e-4)
    assert torch.all(histogram_distance(hists, hists) < 1e-3)
    red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    blue = torch.tensor([0.2, 0.2, 0.8]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    far = image_histogram_distance(red, blue, size=None)
    assert far.item() > 0.8  # disjoint chroma (only the kernels' heavy tails overlap)


def test_histogram_ignores_brightness_but_not_hue() -> None:
    images = random_images(1, 32, seed=9) * 0.5 + 0.25
    darker = images * 0.6
    tinted = images.clone()
    tinted[:, 0] = (tinted[:, 0] * 1.5).clamp(0, 1)
    same = image_histogram_distance(images, darker, size=None).item()
    moved = image_histogram_distance(images, tinted, size=None).item()
    assert same < 0.1 < moved


def test_resizes_to_256_and_broadcasts() -> None:
    images = random_images(2, 64, seed=3)
    hist = rgb_uv_histogram(images)  # resized to 256 internally
    assert hist.shape == (2, 3, 64, 64)
    dist = histogram_distance(hist, hist[:1])
    assert dist.shape == (2,)
    assert dist[0].item() < 1e-3


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="rgb_uv_histogram"):
        rgb_uv_histogram(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="histogram_distance"):
        histogram_distance(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16))
