"""HistoGAN's RGB-uv colour histogram and the Hellinger "histogram loss".

The histogram describes an image's colours independently of its brightness: for each
channel c in (R, G, B) it is a 2-D histogram of the log-chroma pair
``(log(I_c / I_o1), log(I_c / I_o2))`` (the two other channels in RGB order),
each pixel weighted by its intensity ``sqrt(R^2 + G^2 + B^2)`` so dark, noisy
chroma counts less. Bins are ``bins`` centres evenly spaced on [-3, 3] and each pixel
adds an inverse-quadratic kernel ``1 / (1 + (d / sigma)^2)`` (sigma 0.02) to every bin,
which makes the histogram smooth and differentiable. The three 2-D histograms are
normalised together to sum to 1.

Choices, following the reference code of Afifi, Brubaker & Brown (HistoGAN, CVPR 2021,
``RGBuvHistBlock`` and its ``histogram_loss``):

* ``eps = 1e-6`` inside the logs and inside the intensity square root;
* images are clamped to [0, 1] and resized to ``size x size`` with bilinear
  interpolation (``align_corners=False``, no antialiasing) when they are not that size
  already; the evaluation fixes ``size = 256`` (HistoGAN itself uses 150);
* distance: Hellinger, ``(1/sqrt(2)) * ||sqrt(H1) - sqrt(H2)||_2`` over all
  ``3 x bins x bins`` entries, per image (HistoGAN averages it over the batch; here it
  is returned per pair so callers can average or inspect it). It lies in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "HISTOGRAM_BINS",
    "HISTOGRAM_SIZE",
    "histogram_distance",
    "image_histogram_distance",
    "rgb_uv_histogram",
]

#: Bins per log-chroma axis (docs/architecture.md, Evaluation protocol).
HISTOGRAM_BINS = 64
#: Side larger images are resized to before counting.
HISTOGRAM_SIZE = 256
_EPS = 1e-6
_BOUNDARY = (-3.0, 3.0)


def rgb_uv_histogram(
    images: torch.Tensor,
    bins: int = HISTOGRAM_BINS,
    size: int | None = HISTOGRAM_SIZE,
    *,
    sigma: float = 0.02,
    intensity_scale: bool = True,
) -> torch.Tensor:
    """RGB-uv histograms ``[B, 3, bins, bins]`` (each image's entries sum to 1).

    ``images`` is ``[B, 3, H, W]`` (or ``[3, H, W]``) in [0, 1]. ``size=None`` skips the
    resize. Differentiable, so it can also serve as a colour loss.
    """
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"rgb_uv_histogram: expected images [B, 3, H, W], got shape {tuple(images.shape)}"
        )
    if bins < 2:
        raise ValueError(f"rgb_uv_histogram: bins must be >= 2, got {bins}")
    x = images.float().clamp(0.0, 1.0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    centres = torch.linspace(_BOUNDARY[0], _BOUNDARY[1], bins, device=x.device)
    hists = []
    for image in x:  # one image at a time bounds memory to ~pixels x bins floats
        flat = image.reshape(3, -1)
        logs = torch.log(flat + _EPS)
        if intensity_scale:
            weight = torch.sqrt((flat * flat).sum(0) + _EPS)
        else:
            weight = torch.ones_like(flat[0])
        # channel c against the other two, in RGB order: R:(G,B), G:(R,B), B:(R,G)
        u = torch.stack([logs[0] - logs[1], logs[1] - logs[0], logs[2] - logs[0]])
        v = torch.stack([logs[0] - logs[2], logs[1] - logs[2], logs[2] - logs[1]])
        ku = 1.0 / (1.0 + ((u.unsqueeze(-1) - centres) / sigma) ** 2)  # [3, P, bins]
        kv = 1.0 / (1.0 + ((v.unsqueeze(-1) - centres) / sigma) ** 2)
        hist = torch.matmul((ku * weight.unsqueeze(-1)).transpose(1, 2), kv)  # [3, bins, bins]
        hists.append(hist / (hist.sum() + _EPS))
    return torch.stack(hists)


def histogram_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hellinger distance ``[B]`` between histograms ``[B, 3, bins, bins]`` (b may be [1, ...]).

    0 means identical colour distributions, 1 means disjoint ones.
    """
    if a.ndim == 3:
        a = a.unsqueeze(0)
    if b.ndim == 3:
        b = b.unsqueeze(0)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"histogram_distance: shapes {tuple(a.shape)} and {tuple(b.shape)} do not match"
        )
    diff = torch.sqrt(a.clamp_min(0)) - torch.sqrt(b.clamp_min(0))
    return torch.sqrt((diff * diff).flatten(1).sum(1)) / math.sqrt(2.0)


def image_histogram_distance(
    images: torch.Tensor,
    references: torch.Tensor,
    bins: int = HISTOGRAM_BINS,
    size: int | None = HISTOGRAM_SIZE,
) -> torch.Tensor:
    """The evaluation's histogram loss: Hellinger distance ``[B]`` between images' histograms."""
    return histogram_distance(
        rgb_uv_histogram(images, bins, size), rgb_uv_histogram(references, bins, size)
    )
