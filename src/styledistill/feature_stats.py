"""Per-channel statistics of feature maps, shared by the losses and the metrics.

It imports torch only, so :mod:`styledistill.losses` and :mod:`styledistill.metrics`
can both use it without importing each other (one copy of each rule, issue #14).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["channel_mean_std", "tile_mean_std"]


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
