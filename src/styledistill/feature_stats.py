"""Per-channel statistics of feature maps, shared by the losses and the metrics.

It imports torch only, so :mod:`styledistill.losses` and :mod:`styledistill.metrics`
can both use it without importing each other (one copy of each rule, issue #14).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "channel_mean_std",
    "masked_mean_std",
    "normalized_feature_distance",
    "statistics_distance",
    "tile_mean_std",
    "unit_normalized",
]


def channel_mean_std(features: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std ``[B,C]`` of each channel of ``features [B,C,...]`` over its positions.

    The std is the population one (``unbiased=False``) with ``eps`` added to the variance
    before the square root, so it stays finite and differentiable on flat channels; the
    callers pick ``eps`` (the losses 1e-5, the perceptual metric 1e-8).
    """
    flat = features.flatten(2)
    return flat.mean(dim=2), (flat.var(dim=2, unbiased=False) + eps).sqrt()


def tile_mean_std(
    features: torch.Tensor, tiles: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`channel_mean_std` of each tile of a ``tiles`` x ``tiles`` grid over
    ``features [B,C,H,W]``: ``[B,C,tiles,tiles]`` each (adaptive pooling, so any size)."""
    mean = F.adaptive_avg_pool2d(features, tiles)
    variance = (F.adaptive_avg_pool2d(features * features, tiles) - mean * mean).clamp_min(0.0)
    return mean, (variance + eps).sqrt()


def unit_normalized(features: torch.Tensor) -> torch.Tensor:
    """Each position's feature vector scaled to unit length (LPIPS's normalisation)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


def normalized_feature_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS-style distance ``[B]`` of feature maps without learned heads: the squared
    difference of unit-normalised features, summed over channels, averaged over positions.
    Sees *where* things are."""
    return (unit_normalized(a) - unit_normalized(b)).pow(2).sum(dim=1).mean(dim=(1, 2))


def statistics_distance(a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """Distance ``[B]`` of the per-channel mean and std of ``a`` to those of ``b`` (the
    AdaIN/Gram family of style statistics): L2, relative to ``b``'s std norm. Sees *what
    the texture is*, wherever it is."""
    a_mean, a_std = channel_mean_std(a, eps=eps)
    b_mean, b_std = channel_mean_std(b, eps=eps)
    gap = torch.cat([a_mean - b_mean, a_std - b_std], dim=1).norm(dim=1)
    return gap / (b_std.norm(dim=1) + 1e-8)


def masked_mean_std(images: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-image channel means and stds ``[B, 2C]`` over the real (unpadded) positions of
    ``images [B,C,H,W]`` (``mask [B,H,W]`` True on padding; None: all real). The std has
    1e-5 added to the variance, so flat channels stay finite."""
    if mask is None:
        keep = torch.ones_like(images[:, :1])
    else:
        keep = (~mask).unsqueeze(1).to(images.dtype)
    count = keep.sum(dim=(2, 3)).clamp(min=1.0)
    mean = (images * keep).sum(dim=(2, 3)) / count
    var = (((images - mean[..., None, None]) ** 2) * keep).sum(dim=(2, 3)) / count
    return torch.cat([mean, (var + 1e-5).sqrt()], dim=1)
