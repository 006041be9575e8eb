"""AdaIN skips: content-backbone features, renormalised to the style's, into the decoder.

The small preset's tokens are 16x coarser than the pixels. Its image decoder gets the
content backbone's finer activations (at strides 8 and 4, say) after the upsampling that
reaches their stride, each channel renormalised to the mean/std the style image has at
the same depth of the same backbone (AdaIN, Huang & Belongie 2017): a U-Net skip that
carries the content's layout with the style's local texture statistics. The style's
statistics are computed once, in the style memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..errors import ConfigError
from ..feature_stats import masked_mean_std

__all__ = ["SkipConfig", "adain"]


@dataclass
class SkipConfig:
    """Which backbone strides feed the image decoder (``STTRConfig.skips``)."""

    strides: list[int] = field(default_factory=lambda: [8])

    def validate(self, source: str, channels: dict[int, int], content_stride: int) -> None:
        """``channels``: the backbone's width at each stride it can be cut at."""
        if not self.strides or len(set(self.strides)) != len(self.strides):
            raise ConfigError(f"{source}: skips.strides must list distinct strides")
        for stride in self.strides:
            if stride not in channels or not 1 < stride < content_stride:
                raise ConfigError(
                    f"{source}: skip stride {stride} must be a backbone stride below "
                    f"content_stride {content_stride}"
                )


def adain(features: Tensor, mask: Tensor | None, style_stats: Tensor) -> Tensor:
    """Content ``features [B,C,h,w]`` renormalised to the style's channel mean/std
    (``style_stats [B,2C]``, :func:`~styledistill.feature_stats.masked_mean_std`)."""
    channels = features.shape[1]
    mean, std = masked_mean_std(features, mask)[..., None, None].split(channels, dim=1)
    style_mean, style_std = style_stats[..., None, None].split(channels, dim=1)
    return (features - mean) / std * style_std + style_mean
