"""The image decoder's stages and the small preset's output layer.

The paper's image decoder is a 1x1 conv then, per x2 upsampling, a residual bottleneck,
the upsampling and a 3x3 conv (:class:`DecoderStage`). The small preset adds AdaIN skips
concatenated before a stage's conv (``skips``) and ends in :class:`SkipOutput`, a 1x1
layer over the features, the content and the colour prior's image (``colour``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .colour import ColourPrior, ColourPriorConfig

if TYPE_CHECKING:
    from .sttr import StyleMemory

__all__ = ["DecoderStage", "ResidualBottleneck", "SkipOutput"]


class ResidualBottleneck(nn.Module):
    """Pre-activation bottleneck (BN, LeakyReLU, conv) x3 with inner width outer/2."""

    def __init__(self, outer: int, inner: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(outer),
            nn.LeakyReLU(),
            nn.Conv2d(outer, inner, 1),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(),
            nn.Conv2d(inner, inner, 3, padding=1),
            nn.BatchNorm2d(inner),
            nn.LeakyReLU(),
            nn.Conv2d(inner, outer, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class DecoderStage(nn.Module):
    """One image-decoder stage: residual bottleneck, x2 upsampling, (skip,) pad, 3x3 conv.

    ``conv_out=None`` stops after the bottleneck: the small preset's last stage, whose
    upsampling and 1x1 conv :class:`SkipOutput` does (a 1x1 conv commutes with bilinear
    upsampling, so its share of the features is taken at half resolution).
    """

    def __init__(self, width: int, conv_out: int | None, padding: str, skip: int = 0) -> None:
        super().__init__()
        self.bottleneck = ResidualBottleneck(width, max(1, width // 2))
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv: nn.Module | None = None
        self.pad: nn.Module = nn.Identity()
        if conv_out is not None:
            if padding == "reflect":
                self.pad, self.conv = nn.ReflectionPad2d(1), nn.Conv2d(width + skip, conv_out, 3)
            else:
                self.conv = nn.Conv2d(width + skip, conv_out, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.bottleneck(x)
        if self.conv is None:
            return x
        x = self.upsample(x)
        if skip is not None:
            x = torch.cat([x, skip.to(x.dtype)], dim=1)
        return self.conv(self.pad(x))


class SkipOutput(nn.Module):
    """The small preset's output layer: one 1x1 conv over [the last stage's features, the
    content, the content recoloured by the colour prior] at full resolution, giving the
    change (logit) to the colour prior's image, or the image itself without the prior.

    It starts at zero change: the untrained student is the colour prior's image (or,
    without it, the content), and training learns what the teacher does beyond that.
    """

    def __init__(self, features: int, dim: int, colour: ColourPriorConfig | None) -> None:
        super().__init__()
        self.colour = ColourPrior(colour, dim) if colour is not None else None
        images = 6 if self.colour is not None else 3
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Conv2d(features + images, 3, 1)
        with torch.no_grad():
            self.conv.weight[:, :features].mul_(0.1)
            self.conv.weight[:, features:].zero_()
            self.conv.bias.zero_()
            if self.colour is None:  # start as the content itself: sigmoid(4 (c - 0.5))
                for channel in range(3):
                    self.conv.weight[channel, features + channel] = 4.0

    def forward(
        self, x: Tensor, content: Tensor, content_mask: Tensor | None, memory: StyleMemory
    ) -> Tensor:
        features = x.shape[1]
        weight, bias = self.conv.weight, self.conv.bias
        images = content
        base_logit = None
        if self.colour is not None:
            assert memory.colour is not None
            recoloured, base_logit = self.colour(
                content, content_mask, memory.colour, memory.pooled()
            )
            images = torch.cat([content, recoloured], dim=1)
        # the content enters centred: the bias takes the centring
        centring = 0.5 * weight[:, features : features + 3].sum(dim=(1, 2, 3))
        x = F.conv2d(x, weight[:, :features], bias - centring)
        out = self.upsample(x) + F.conv2d(images, weight[:, features:])
        return torch.sigmoid(out if base_logit is None else out + base_logit)
