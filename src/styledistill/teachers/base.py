"""The interface every teacher implements, so the dataset writer treats them alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

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
