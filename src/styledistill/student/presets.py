"""Named STTR configurations (timm style): ``STTR.from_preset(name)``.

``sttr-paper`` is :class:`~styledistill.student.sttr.STTRConfig`'s defaults; ``sttr-small``
is the real-time student, with the parts of ``skips``, ``colour`` and ``decoder`` on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .colour import ColourPriorConfig
from .skips import SkipConfig
from .sttr import STTRConfig

__all__ = ["list_presets", "preset_config", "register_preset"]

_PRESETS: dict[str, Callable[[], STTRConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], STTRConfig]], Callable[[], STTRConfig]]:
    """Register a named configuration (timm style): ``STTR.from_preset(name)``."""

    def wrap(fn: Callable[[], STTRConfig]) -> Callable[[], STTRConfig]:
        _PRESETS[name] = fn
        return fn

    return wrap


def preset_config(name: str, **overrides: Any) -> STTRConfig:
    """A preset's STTRConfig with setting overrides (checked: names, types), unbuilt.

    A sub-config setting is given as a dict (``skips={"strides": [8]}``) or None."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown STTR preset {name!r}; choose from {', '.join(list_presets())}")
    data = {**_PRESETS[name]().to_dict(), **overrides}
    return STTRConfig.from_dict(data, source=f"preset {name}")


def list_presets() -> list[str]:
    return sorted(_PRESETS)


@register_preset("sttr-paper")
def _sttr_paper() -> STTRConfig:
    """The official demo configuration: 45.6M parameters."""
    return STTRConfig(name="sttr-paper")


@register_preset("sttr-small")
def _sttr_small() -> STTRConfig:
    """Real time on a 2-core CPU, trained to reproduce StyleID's look.

    Same structure, lighter parts: MobileNetV2 tokenizers (torchvision; ImageNet weights
    ship offline, see ``scripts/setup.sh``), content and style tokens at stride 16 (the
    style resized to 256 px: 256 style tokens), d=128 with 4 heads, FFN 256, 2 encoder +
    1 decoder layer, no dropout (0.1 stalls a model this small), an image decoder
    (128..16 channels, zero-padded convs) that receives AdaIN-matched content features at
    strides 8 and 4 and, at full resolution, the content and the content
    histogram-matched to the style, whose change the output is (bench/RESULTS.md,
    "StyleID").
    """
    return STTRConfig(
        name="sttr-small",
        content_backbone="mobilenet_v2",
        content_stride=16,
        style_backbone="mobilenet_v2",
        style_stride=16,
        style_size=256,
        d_model=128,
        num_heads=4,
        ffn_dim=256,
        encoder_layers=2,
        decoder_layers=1,
        decoder_channels=[128, 64, 32, 16],
        decoder_padding="zeros",
        dropout=0.0,
        content_skip=True,
        colour_prior=ColourPriorConfig(levels=128),
        skips=SkipConfig(strides=[8, 4]),
        pad_multiple=32,
    )
