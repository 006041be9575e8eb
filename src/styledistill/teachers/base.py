"""The interface every teacher implements, so the dataset writer treats them alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from ..errors import ConfigError

#: What a teacher accepts as one image: a ``[3,H,W]`` tensor in [0, 1] (or anything
#: :func:`styledistill.images.load_image` takes: path, PIL image, numpy array).
ImageLike = Any


@runtime_checkable
class Teacher(Protocol):
    """A style-transfer teacher.

    ``stylize`` returns ``[B, 3, size, size]`` float32 in [0, 1] on the CPU, one output
    per (content, style) pair. ``seeds`` (one per pair) make each output independent of
    how pairs were batched. ``prepare_style`` does the per-style work once (StyleID:
    DDIM inversion + K/V cache; texture: style pyramid) and its result may be passed in
    ``styles`` instead of an image.
    """

    name: str
    size: int

    def config(self) -> dict[str, Any]:
        """Every setting that affects the output, JSON-serializable (for manifests)."""
        ...

    def model_info(self) -> dict[str, Any]:
        """Which weights were used: ``{"model_id": ..., "revision": ...}`` (empty if none)."""
        ...

    def prepare_style(self, style: ImageLike) -> Any: ...

    def stylize(
        self,
        contents: Sequence[ImageLike] | torch.Tensor,
        styles: Sequence[Any] | torch.Tensor,
        *,
        batch_size: int | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor: ...


def pair_up(
    teacher: str,
    contents: Sequence[ImageLike] | torch.Tensor,
    styles: Sequence[Any] | torch.Tensor,
    *,
    batch_size: int | None,
    seeds: Sequence[int] | None,
    default_seed: int,
) -> tuple[list[Any], list[Any], list[int]]:
    """The ``stylize`` arguments checked as one list a pair: contents, styles (a single
    style serves every content) and seeds (default: ``default_seed`` for each pair)."""
    content_list, style_list = list(contents), list(styles)
    if not content_list:
        raise ConfigError(f"{teacher} teacher: no content images given")
    if len(style_list) == 1 and len(content_list) > 1:
        style_list = style_list * len(content_list)
    if len(style_list) != len(content_list):
        raise ConfigError(
            f"{teacher} teacher: {len(content_list)} contents but {len(style_list)} styles; "
            "give one style per content (or a single style)"
        )
    seed_list = [int(s) for s in seeds] if seeds is not None else [default_seed] * len(content_list)
    if len(seed_list) != len(content_list):
        raise ConfigError(
            f"{teacher} teacher: {len(seed_list)} seeds for {len(content_list)} pairs"
        )
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"{teacher} teacher: batch_size must be >= 1, got {batch_size}")
    return content_list, style_list, seed_list
