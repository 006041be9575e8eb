"""The colour prior: the content histogram-matched to the style, as the output's start.

The small preset predicts its output as a change, in logit space, to the content with
each RGB channel's histogram matched to the style's (per-channel histogram
specification, what ``image_ops.histogram_matched`` does with scikit-image),
after a learned per-image scale and shift of the matched colours (a FiLM from the pooled
style memory). Untrained, the student *is* that colour transfer; training learns the
rest. Everything is written to export to ONNX: histograms by scatter-add (no sort),
the matched colours as a 256-entry table per channel read once per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "HISTOGRAM_BINS",
    "ColourPrior",
    "ColourPriorConfig",
    "channel_quantiles",
    "logit",
    "look_up",
    "match_channel_quantiles",
    "quantile_lookup",
]

#: Histogram bins per channel for the colour statistics (8-bit images: one value per bin).
HISTOGRAM_BINS = 256


def _bin_index(images: Tensor, bins: int = HISTOGRAM_BINS) -> Tensor:
    """Each pixel's histogram bin per channel: ``[B,C,H,W]`` in [0,1] -> ``[B,C,H*W]`` int64."""
    # clamped below the last bin's top, the cast's truncation is the floor: one pass less
    return (images.float() * bins).clamp(0.0, bins - 1e-3).long().flatten(2)


def _channel_cdf(
    images: Tensor, mask: Tensor | None, bins: int = HISTOGRAM_BINS, index: Tensor | None = None
) -> Tensor:
    """Per-channel CDF at the bin edges ``0, 1/bins, ..., 1`` over unpadded pixels.

    ``[B,C,H,W]`` in [0,1] -> ``[B,C,bins+1]``. Built from a scatter-add histogram (no sort,
    so it exports to ONNX and costs one pass over the pixels).
    """
    batch, channels = images.shape[:2]
    index = _bin_index(images, bins) if index is None else index
    if mask is None:
        weights = torch.ones(index.shape, device=images.device)
    else:
        weights = (~mask).flatten(1).unsqueeze(1).float().expand(index.shape)
    counts = torch.zeros(batch, channels, bins, device=images.device).scatter_add(2, index, weights)
    cdf = counts.cumsum(2) / counts.sum(2, keepdim=True).clamp_min(1.0)
    return F.pad(cdf, (1, 0))


def _interpolate(table: Tensor, position: Tensor) -> Tensor:
    """Piecewise-linear lookup: ``table [B,C,K]`` sampled at ``position [B,C,N]`` in [0, K-1]."""
    last = table.shape[-1] - 1
    left = position.floor().clamp(0, last - 1)
    frac = (position - left).clamp(0.0, 1.0)
    left = left.long()
    low = torch.gather(table, 2, left)
    high = torch.gather(table, 2, left + 1)
    return low + frac * (high - low)


def channel_quantiles(images: Tensor, mask: Tensor | None, levels: int) -> Tensor:
    """Per-channel quantiles at ``levels`` evenly spaced probabilities 0..1 -> ``[B,C,levels]``.

    The inverse of the piecewise-linear CDF of :func:`_channel_cdf`, computed by summing
    how much of each bin lies below each probability (elementwise, ONNX-friendly).
    """
    cdf = _channel_cdf(images, mask)  # [B,C,bins+1]
    bins = cdf.shape[-1] - 1
    probability = torch.linspace(0.0, 1.0, levels, device=cdf.device).view(1, 1, levels, 1)
    low, width = cdf[..., :-1].unsqueeze(2), (cdf[..., 1:] - cdf[..., :-1]).unsqueeze(2)
    covered = ((probability - low) / width.clamp_min(1e-12)).clamp(0.0, 1.0)
    return covered.sum(-1) / bins


def match_channel_quantiles(
    content: Tensor, content_mask: Tensor | None, style_quantiles: Tensor
) -> Tensor:
    """Histogram specification per channel: each content pixel -> its CDF -> style quantile.

    ``style_quantiles [B,C,L]`` from :func:`channel_quantiles`; works on padded content
    (``content_mask`` True on padding, which is left out of the content's histogram).
    """
    table, index = quantile_lookup(content, content_mask, style_quantiles)
    return look_up(table, index, content)


def quantile_lookup(
    content: Tensor, content_mask: Tensor | None, style_quantiles: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`match_channel_quantiles` as a table and where to read it: the matched value of
    each histogram bin ``[B,C,bins]`` and each pixel's bin ``[B,C,H*W]``. A per-channel
    function of the matched colours can then be applied to the table's 256 entries once,
    not to every pixel (:func:`look_up`)."""
    index = _bin_index(content)
    cdf = _channel_cdf(content, content_mask, index=index)
    # the middle of each bin's mass: a spike of equal values (black sky, white paper)
    # maps to the middle of the style quantiles it spans, not to one end
    middle = 0.5 * (cdf[..., :-1] + cdf[..., 1:])
    quantiles = style_quantiles.float()
    return _interpolate(quantiles, middle * (quantiles.shape[-1] - 1)), index


def look_up(table: Tensor, index: Tensor, like: Tensor) -> Tensor:
    """Each pixel's entry of ``table [B,C,bins]`` (:func:`quantile_lookup`), shaped and
    typed ``like [B,C,H,W]``: one gather."""
    return torch.gather(table, 2, index).view(like.shape).to(like.dtype)


def logit(images: Tensor, eps: float = 1e-3) -> Tensor:
    """``torch.logit(images, eps)``, written as clamp, divide, log: torch's ONNX export of
    ``logit`` adds a compare-and-select pair per bound over every pixel after the clamp,
    about 1 ms per call on a 384 px image in onnxruntime."""
    if images.dtype in (torch.float16, torch.bfloat16):  # 1 - eps rounds to 1: log(x / 0)
        return logit(images.float(), eps).to(images.dtype)
    clamped = images.clamp(eps, 1.0 - eps)
    return torch.log(clamped / (1.0 - clamped))


# --------------------------------------------------------------------------- the model


@dataclass
class ColourPriorConfig:
    """The colour prior's settings (``STTRConfig.colour_prior``)."""

    #: Quantiles per channel the style's colours are kept as (its style memory share).
    levels: int = 128

    def validate(self, source: str) -> None:
        if not 2 <= self.levels <= 4096:
            raise ConfigError(f"{source}: colour_prior.levels {self.levels} must be in 2..4096")


class ColourPrior(nn.Module):
    """The content histogram-matched to the style, scaled/shifted per image by a FiLM.

    ``style_quantiles`` runs on the style side (its result is part of the style memory);
    ``forward`` on the content side gives the recoloured content (centred on 0, an input
    of the output layer) and its logit (what the output layer's change is added to).
    """

    def __init__(self, config: ColourPriorConfig, dim: int) -> None:
        super().__init__()
        self.config = config
        self.film = nn.Linear(dim, 6)  # per-image RGB scale and shift, from the style memory
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def style_quantiles(self, style: Tensor, style_mask: Tensor | None) -> Tensor:
        """``[B,3,levels]``: the style's colour distribution over its unpadded pixels."""
        return channel_quantiles(style, style_mask, self.config.levels)

    def forward(
        self, content: Tensor, content_mask: Tensor | None, quantiles: Tensor, pooled: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(recoloured content - 0.5, its logit), both ``[B,3,H,W]``.

        The FiLM and the logit act on the histogram's 256-entry table, then one lookup per
        pixel each (no per-pixel log: onnxruntime's Log is not vectorised).
        """
        table, index = quantile_lookup(content, content_mask, quantiles)
        scale, shift = self.film(pooled).view(-1, 6, 1).split(3, dim=1)
        film = (table - 0.5) * (1.0 + scale) + shift
        recoloured = look_up(film, index, content)
        base_logit = look_up(logit((film + 0.5).clamp(0.0, 1.0)), index, content)
        return recoloured, base_logit
