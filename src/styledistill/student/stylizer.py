"""Inference API for a trained student: ``Stylizer(content, style) -> PIL image``.

A style is encoded once (``encode_style`` -> :class:`StyleCode`) and reused for any
number of contents: folders and video frames pay only for the content half of STTR.
Contents of any size are resized so the long side is ``size`` (default 512), padded to
a multiple of 32 with a mask, stylized, and brought back to their original size.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image
from torch import Tensor

from ..budget import check_memory, student_bytes_per_pixel, working_shape
from ..errors import ConfigError
from ..images import (
    ImageSource,
    fit_long_side,
    load_image,
    require_finite,
    resize_long_side,
    to_pil,
    unfit,
)
from ..runtime import resolve_dtype
from .memory import StyleMemory
from .sttr import STTR

__all__ = ["StyleCode", "Stylizer"]


@dataclass(frozen=True)
class StyleCode:
    """An encoded style (the student's :class:`StyleMemory`), reusable for any number of
    contents, and the size the style was encoded at."""

    memory: StyleMemory
    style_size: tuple[int, int]  # (H, W) the style was encoded at, before padding

    def to(self, device: torch.device | str, dtype: torch.dtype) -> StyleCode:
        return StyleCode(self.memory.to(device, dtype), self.style_size)


class Stylizer:
    """Stylize images with a student model; see the module docstring for the policy.

    ``size``: long side the content (and, for models without a fixed ``style_size``,
    the style) is resized to; ``None`` or 0 keeps the native resolution.
    ``dtype``: float32 (default), or float16/bfloat16 on a GPU (bfloat16 on CPU).
    ``compile``: wrap the model's two halves in ``torch.compile``.
    ``channels_last``: NHWC memory format for the convolutions (faster with oneDNN and
    cuDNN; about 15% on a 2-core CPU).
    ``fold_batchnorm``: run an :meth:`STTR.inference_copy` (frozen BatchNorm folded into
    the convolutions; the model passed in is not changed).
    ``max_pixels``: the largest working image (batch x height x width, after resizing
    and padding) to attempt; None refuses what would not fit in the device's free memory
    (:mod:`styledistill.budget`). Either way a refusal comes before any allocation.
    """

    def __init__(
        self,
        model: STTR,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        size: int | None = 512,
        compile: bool = False,
        channels_last: bool = True,
        fold_batchnorm: bool = True,
        max_pixels: int | None = None,
    ) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device, default=torch.float32)
        if size is not None and size < 0:
            raise ConfigError(f"size {size} must be positive (or 0/None for native resolution)")
        self.size = size or None
        self.max_pixels = max_pixels
        self.bytes_per_pixel = student_bytes_per_pixel(model.config.image_decoder_channels()[-1])
        if fold_batchnorm:  # the caller's model is left as it is (trainable, saveable)
            model = model.inference_copy()
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self._encode = model.encode_style
        self._decode = model.decode
        if compile:
            self._encode = torch.compile(model.encode_style, dynamic=True)
            self._decode = torch.compile(model.decode, dynamic=True)

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike, *, allow_pickle: bool = False, **options: Any
    ) -> Stylizer:
        """Load a student folder (e.g. ``runs/NAME/student``) or a pretrained name
        (:func:`~styledistill.student.list_pretrained`); ``options`` are the constructor's
        (``device``, ``size``...), so their defaults exist once."""
        model = STTR.from_pretrained(source, allow_pickle=allow_pickle)
        return cls(model, **options)

    @property
    def config(self) -> Any:
        return self.model.config

    def _size(self, size: int | None) -> int | None:
        if size is None:
            return self.size
        if size < 0:
            raise ConfigError(f"size {size} must be positive (or 0 for native resolution)")
        return size or None

    def check_budget(self, what: str, batch: int, height: int, width: int) -> None:
        """Refuse (one line, before allocating) a working ``batch x height x width``
        that would not fit (:func:`styledistill.budget.check_memory`)."""
        shape = (batch, height, width) if batch > 1 else (height, width)
        need = self.bytes_per_pixel * batch * height * width
        check_memory(what, shape, need, max_pixels=self.max_pixels, device=self.device)

    @torch.inference_mode()
    def encode_style(self, style: ImageSource | StyleCode, *, size: int | None = None) -> StyleCode:
        """Encode one style image (any source ``load_image`` takes) for reuse."""
        if isinstance(style, StyleCode):
            return style.to(self.device, self.dtype)
        image = load_image(style)
        long_side = self._size(size)
        config = self.model.config
        side = config.style_size or long_side
        self.check_budget(
            "encoding the style", 1, *working_shape(*image.shape[-2:], side, config.pad_multiple)
        )
        image = image.to(self.device)
        if self.model.config.style_size is None and long_side is not None:
            image = resize_long_side(image, long_side)
        padded, mask = self.model.prepare_style(image[None].to(torch.float32))
        memory = self._encode(
            padded.to(self.dtype).contiguous(memory_format=self.memory_format),
            mask if bool(mask.any()) else None,
        )
        # inference tensors cloned so the code outlives inference_mode
        memory = dataclasses.replace(
            memory,
            tokens=memory.tokens.clone(),
            pos=memory.pos.clone(),
            mask=None if memory.mask is None else memory.mask.clone(),
            colour=None if memory.colour is None else memory.colour.clone(),
            skip_stats=tuple(s.clone() for s in memory.skip_stats),
        )
        return StyleCode(memory, (int(image.shape[-2]), int(image.shape[-1])))

    @torch.inference_mode()
    def stylize_tensor(
        self, contents: Tensor, style: StyleCode | ImageSource, *, size: int | None = None
    ) -> Tensor:
        """``[B,3,H,W]`` (or ``[3,H,W]``) float in [0,1] -> stylized, same shape, float32,
        on the contents' device. The style is shared by every content."""
        code = self.encode_style(style)
        single = contents.ndim == 3
        batch = contents[None] if single else contents
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"contents must be [B,3,H,W] or [3,H,W], got {tuple(contents.shape)}")
        long_side = self._size(size)
        multiple = self.model.config.pad_multiple
        self.check_budget(
            "stylizing", len(batch), *working_shape(*batch.shape[-2:], long_side, multiple)
        )
        fitted = fit_long_side(batch.to(self.device, torch.float32), long_side, multiple=multiple)
        mask = fitted.mask if bool(fitted.mask.any()) else None
        out = self._decode(
            fitted.image.to(self.dtype).contiguous(memory_format=self.memory_format),
            code.memory,
            mask,
        )
        require_finite(out, "the student's output")  # never a black image saved as a result
        out = unfit(out.float(), fitted).clamp(0.0, 1.0).to(contents.device)
        return out[0] if single else out

    def __call__(
        self,
        content: ImageSource | Sequence[ImageSource],
        style: ImageSource | StyleCode,
        *,
        size: int | None = None,
        output: Literal["pil", "tensor"] = "pil",
        batch_size: int = 8,
    ) -> Image.Image | Tensor | list[Image.Image] | list[Tensor]:
        """Stylize one content (or a list) with one style.

        Returns a PIL image (``output="pil"``) or a float32 ``[3,H,W]`` CPU tensor, or a
        list of them for a list of contents. Same-size contents are batched.
        """
        if output not in ("pil", "tensor"):
            raise ConfigError(f"output must be 'pil' or 'tensor', not {output!r}")
        many = isinstance(content, (list, tuple))
        sources = list(content) if many else [content]
        code = self.encode_style(style, size=size)
        images = [load_image(src) for src in sources]
        results: list[Tensor | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_shape.setdefault(tuple(image.shape), []).append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), max(1, batch_size)):
                chunk = indices[start : start + max(1, batch_size)]
                out = self.stylize_tensor(torch.stack([images[i] for i in chunk]), code, size=size)
                for i, image in zip(chunk, out.cpu()):
                    results[i] = image
        converted = [to_pil(r) if output == "pil" else r for r in results]  # type: ignore[arg-type]
        return converted if many else converted[0]  # type: ignore[return-value]
