"""TextureTeacher (Elad & Milanfar 2017): protocol, determinism, and measured quality.

Quality numbers are checked on the offline samples (skimage photos x generated styles):
colour (RGB-uv histogram distance to the style at least halves), structure (blurred
grayscale SSIM to the content stays above what the style image itself scores, and above
0.35, yet below 0.95) and texture (gradient-orientation histogram moves toward the style's,
and the defaults carry more of the style's gradients than the previous ones did).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.filters import gaussian
from skimage.metrics import structural_similarity

from styledistill.errors import ConfigError
from styledistill.images import center_crop_resize
from styledistill.metrics.histogram import image_histogram_distance
from styledistill.samples import generate_style, sample_contents
from styledistill.teachers import Teacher, TextureTeacher, get_teacher_class
from styledistill.teachers.texture import match_histograms

SSIM_FLOOR = 0.35


def gray(image: torch.Tensor) -> np.ndarray:
    return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).double().numpy()


def blurred_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of heavily blurred grayscale images: compares layout, not texture."""
    sigma = a.shape[-1] / 64
    return float(
        structural_similarity(gaussian(gray(a), sigma), gaussian(gray(b), sigma), data_range=1.0)
    )


def orientation_histogram(image: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Gradient-magnitude-weighted histogram of gradient orientations (mod pi)."""
    g = torch.from_numpy(gray(image))
    gx = g[:-1, 1:] - g[:-1, :-1]
    gy = g[1:, :-1] - g[:-1, :-1]
    magnitude = (gx**2 + gy**2).sqrt().flatten()
    angle = torch.atan2(gy, gx).remainder(torch.pi).flatten()
    index = (angle / torch.pi * bins).long().clamp_max(bins - 1)
    hist = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, magnitude)
    return hist / hist.sum()


@pytest.fixture(scope="module")
def contents() -> dict[str, torch.Tensor]:
    return sample_contents(size=160, names=["astronaut", "chelsea", "coffee"])


def tiny_teacher(**overrides) -> TextureTeacher:
    settings = dict(size=48, scales=(0.5, 1.0), patch_sizes=(13, 9), gaps=(11, 8))
    settings.update(overrides)
    return TextureTeacher(**settings)


def check_quality(output, content, style, label):
    content = center_crop_resize(content, output.shape[-1])
    colour_out = image_histogram_distance(output[None], style[None]).item()
    colour_in = image_histogram_distance(content[None], style[None]).item()
    assert colour_out <= 0.5 * colour_in, f"{label}: hist {colour_out:.3f} vs {colour_in:.3f}"
    structure = blurred_ssim(output, content)
    style_alone = blurred_ssim(style, content)
    assert max(SSIM_FLOOR, style_alone + 0.1) < structure < 0.95, (
        f"{label}: ssim {structure:.3f} (style alone {style_alone:.3f})"
    )
    target = orientation_histogram(style)
    texture_out = (orientation_histogram(output) - target).abs().sum().item()
    texture_in = (orientation_histogram(content) - target).abs().sum().item()
    assert texture_out < texture_in, f"{label}: orientation {texture_out:.3f} vs {texture_in:.3f}"


@pytest.mark.parametrize("style_name", ["stained_glass", "pointillism", "ink_wash"])
def test_quality_at_128(contents, style_name) -> None:
    teacher = TextureTeacher(size=128)
    style = generate_style(style_name, 128, seed=0)
    prepared = teacher.prepare_style(style)
    names = ["astronaut", "chelsea"]
    outputs = teacher.stylize([contents[n] for n in names], [prepared], seeds=[0, 1])
    assert outputs.shape == (2, 3, 128, 128)
    for name, output in zip(names, outputs):
        check_quality(output, contents[name], style, f"{name} x {style_name}")


def test_quality_at_256_default_settings(contents) -> None:
    teacher = TextureTeacher()  # the real dataset configuration
    style = generate_style("mosaic_tiles", 256, seed=0)
    output = teacher.stylize([contents["coffee"]], [style])[0]
    assert output.shape == (3, 256, 256)
    check_quality(output, contents["coffee"], style, "coffee x mosaic_tiles @256")


def mean_gradient(image: torch.Tensor) -> float:
    g = torch.from_numpy(gray(image))
    return float(torch.hypot(g[:-1, 1:] - g[:-1, :-1], g[1:, :-1] - g[:-1, :-1]).mean())


def test_defaults_keep_more_style_texture_than_plain_fusion(contents) -> None:
    """The paper's plain-average fusion damps fine texture; the detail term keeps it."""
    style = generate_style("brush_strokes", 128, seed=0)
    content = contents["chelsea"]
    new = TextureTeacher(size=128).stylize([content], [style])[0]
    old = TextureTeacher(size=128, fusion_detail_radius=0).stylize([content], [style])[0]
    style_gradient = mean_gradient(style)
    assert mean_gradient(old) < mean_gradient(new) <= 1.2 * style_gradient
    target = orientation_histogram(style)
    assert (orientation_histogram(new) - target).abs().sum() < (
        orientation_histogram(old) - target
    ).abs().sum()
    resized = center_crop_resize(content, 128)
    assert blurred_ssim(new, resized) > max(SSIM_FLOOR, blurred_ssim(style, resized) + 0.1)


def test_detail_fusion_keeps_style_texture_strength() -> None:
    """The plain average halves the pasted texture at W = 1; the detail term restores it."""
    generator = torch.Generator().manual_seed(0)
    output = torch.rand(1, 32, 32, generator=generator)  # stands in for pasted texture
    content = torch.linspace(0, 1, 32).expand(1, 32, 32)  # a smooth layout
    weight = torch.ones(1, 32, 32)
    plain = tiny_teacher(fusion_detail_radius=0)._fuse(output, content, weight)
    assert torch.allclose(plain, (output + content) / 2)
    fused = tiny_teacher(fusion_detail_radius=2)._fuse(output, content, weight)

    def roughness(x: torch.Tensor) -> float:
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x[None], 9, 1)[0]

    assert roughness(plain) < 0.6 * roughness(output)  # damped texture
    assert roughness(fused) > 0.85 * roughness(output)  # texture kept
    # and the layout still moves toward the content exactly as much as before
    assert (local_mean(fused) - local_mean(plain)).abs().max() < 0.05


def test_protocol_and_config() -> None:
    teacher = tiny_teacher()
    assert isinstance(teacher, Teacher)
    assert get_teacher_class("texture") is TextureTeacher
    assert teacher.name == "texture" and teacher.size == 48
    config = teacher.config()
    json.dumps(config)
    assert config["robust_r"] == 0.8 and config["gaps"] == [11, 8]
    assert teacher.model_info() == {}


def test_deterministic_batched_and_prepared(contents) -> None:
    teacher = tiny_teacher()
    photo_a, photo_b = contents["astronaut"], contents["chelsea"]
    style_a = generate_style("brush_strokes", 64, seed=0)
    style_b = generate_style("bold_strokes", 64, seed=0)
    batched = teacher.stylize([photo_a, photo_b], [style_a, style_b], seeds=[3, 4])
    assert batched.dtype == torch.float32 and batched.shape == (2, 3, 48, 48)
    assert batched.min().item() >= 0.0 and batched.max().item() <= 1.0
    one = teacher.stylize([photo_a], [style_a], seeds=[3])
    prepared_b = teacher.prepare_style(style_b)
    two = teacher.stylize([photo_b], [prepared_b], seeds=[4])
    assert torch.equal(batched, torch.cat([one, two]))  # batching and preparing change nothing
    again = teacher.stylize([photo_a], [style_a], seeds=[3], batch_size=1)
    assert torch.equal(one, again)  # same seed, same output
    other = teacher.stylize([photo_a], [style_a], seeds=[5])
    assert not torch.equal(one, other)  # the seed drives the starting noise


def test_prepared_style_from_other_settings_is_refused() -> None:
    style = generate_style("ink_wash", 64, seed=0)
    prepared = tiny_teacher().prepare_style(style)
    with pytest.raises(ConfigError, match="different settings"):
        tiny_teacher(pca_energy=0.9).stylize([style], [prepared])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"robust_r": 0.0}, "robust_r"),
        ({"patch_sizes": (9, 13), "gaps": (5, 8)}, "large to small"),
        ({"gaps": (14, 8)}, "gap"),
        ({"scales": (1.0, 0.5)}, "coarse to fine"),
        ({"size": 8}, "size"),
        ({"colour_transfer": "lab"}, "colour_transfer"),
        ({"fusion_detail_radius": -1}, "fusion_detail_radius"),
    ],
)
def test_bad_settings_raise(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_teacher(**settings)


def test_bad_pairs_raise() -> None:
    teacher = tiny_teacher()
    image = torch.rand(3, 48, 48)
    with pytest.raises(ConfigError, match="2 contents but 3 styles"):
        teacher.stylize([image, image], [image, image, image])
    with pytest.raises(ConfigError, match="seeds"):
        teacher.stylize([image], [image], seeds=[1, 2])


def test_match_histograms_is_exact() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 16, 16, generator=generator)
    reference = torch.rand(3, 256, generator=generator) ** 3
    out = match_histograms(image, torch.sort(reference, dim=1).values)
    assert torch.allclose(
        torch.sort(out.reshape(3, -1), 1).values[:, 0], reference.min(1).values, atol=0.02
    )
    # ranks are kept: the mapping is monotonic per channel
    assert torch.equal(torch.argsort(out.reshape(3, -1), 1), torch.argsort(image.reshape(3, -1), 1))
    quantiles = torch.tensor([0.25, 0.5, 0.75])
    assert torch.allclose(
        torch.quantile(out.reshape(3, -1), quantiles, dim=1),
        torch.quantile(reference, quantiles, dim=1),
        atol=0.02,
    )


def test_pca_matching_agrees_with_full_search() -> None:
    """With all variance kept, nearest neighbours in PCA space equal full-space ones."""
    teacher = tiny_teacher(pca_energy=1.0, pca_max_components=300)
    style = generate_style("cubist_shards", 48, seed=0)
    bank = teacher.prepare_style(style).levels[-1].banks[9]
    queries = bank.patches[::7] + 0.05 * torch.randn(
        bank.patches[::7].shape, generator=torch.Generator().manual_seed(1)
    )
    found = TextureTeacher._nearest(queries, bank)
    brute = torch.cdist(queries.double(), bank.patches.double()).argmin(1)
    agree = (found == brute).double().mean().item()
    assert agree > 0.97
