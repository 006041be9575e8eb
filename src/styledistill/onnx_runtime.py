"""The exported student on onnxruntime, without torch: :class:`OnnxStylizer`.

Reads what :mod:`styledistill.export` writes (``OUT.onnx``: content + style memory ->
image, ``OUT.style.onnx``: style -> memory; both with ``styledistill.*`` metadata) and
does the pre- and post-processing in numpy and PIL: decode (the PyTorch path's
decoder), resize the long side, reflect-pad to the pad multiple with a mask, crop and
resize back. It imports numpy, PIL and onnxruntime only, so an app can ship it without
torch (a test checks that importing it leaves torch out).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .budget import (
    attention_bytes,
    check_memory,
    long_side_shape,
    student_bytes_per_pixel,
    working_shape,
)
from .decode import DEFAULT_MAX_PIXELS, MIN_IMAGE_SIDE, decode_image
from .errors import CheckpointError, ConfigError, MissingDependencyError, NonFiniteError
from .plumbing import first_line

__all__ = [
    "CONTENT_INPUTS",
    "META_PREFIX",
    "STYLE_INPUTS",
    "STYLE_OUTPUTS",
    "OnnxStyleCode",
    "OnnxStylizer",
    "load_rgb",
    "pad_batch",
    "style_model_path",
]

#: Largest image :func:`load_rgb` decodes (width x height), as the PyTorch path.
MAX_PIXELS = DEFAULT_MAX_PIXELS
#: Smallest side :func:`load_rgb` accepts, as the PyTorch path.
MIN_SIDE = MIN_IMAGE_SIDE
#: The two files' contract with the export: metadata key prefix, input and output names.
META_PREFIX = "styledistill."
STYLE_INPUTS = ("style", "style_mask")
#: The style memory's first three tensors; a student with a colour prior or skips has more
#: (``StyleMemory.names``), and the style graph's own output names list them all.
STYLE_OUTPUTS = ("memory", "memory_pos", "memory_mask")
CONTENT_INPUTS = ("content", "content_mask")


def style_model_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.style.onnx`` (``model.int8.onnx`` -> ``model.style.int8.onnx``)."""
    path = Path(onnx_path)
    name = path.name
    stem = name[: -len(".onnx")] if name.endswith(".onnx") else name
    if stem.endswith(".int8"):
        return path.with_name(stem[: -len(".int8")] + ".style.int8.onnx")
    return path.with_name(stem + ".style.onnx")


def _require_ort():
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "export", "ONNX inference") from None
    return onnxruntime


def pad_batch(images: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad ``[B,3,H,W]`` right/bottom to a multiple; mask ``[B,H,W]`` True on padding.

    Same policy as the PyTorch model: reflection, or edge replication when the pad
    is larger than the image side.
    """
    batch, _, height, width = images.shape
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    mask = np.zeros((batch, height + pad_h, width + pad_w), dtype=bool)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "edge"
        images = np.pad(images, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        mask[:, height:, :] = True
        mask[:, :, width:] = True
    return np.ascontiguousarray(images, dtype=np.float32), mask


def _resize_chw(image: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """Resize a float ``[3,H,W]`` array channel by channel in PIL's float mode.

    Float mode avoids 8-bit rounding; PIL's filters widen their support when
    shrinking, i.e. they antialias like ``F.interpolate(..., antialias=True)``.
    """
    from PIL import Image

    if image.shape[-2:] == (height, width):
        return image
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(c), mode="F").resize((width, height), resample)
        )
        for c in image
    ]
    return np.clip(np.stack(channels), 0.0, 1.0).astype(np.float32)


def load_rgb(
    source: Any, *, max_pixels: int | None = MAX_PIXELS, min_side: int = MIN_SIDE
) -> np.ndarray:
    """A path, bytes, PIL image or array -> float32 ``[3,H,W]`` in [0,1] (numpy/PIL only).

    The PyTorch path's decoder (:func:`styledistill.decode.decode_image`): same rules
    for 16-bit, EXIF, alpha, CMYK, pixel limits and empty files, same
    :class:`~styledistill.decode.ImageError` and words.
    """
    return decode_image(source, max_pixels=max_pixels, min_side=min_side)


@dataclass
class OnnxStyleCode:
    """An encoded style: the style graph's named outputs (numpy), reusable for any number
    of contents."""

    tensors: dict[str, np.ndarray]

    @property
    def memory(self) -> np.ndarray:
        """The style tokens ``[B,L,d]``."""
        return self.tensors["memory"]

    def for_batch(self, batch: int) -> dict[str, np.ndarray]:
        def grow(a: np.ndarray) -> np.ndarray:
            return a if a.shape[0] == batch else np.repeat(a[:1], batch, axis=0)

        return {name: grow(value) for name, value in self.tensors.items()}


class OnnxStylizer:
    """The student on onnxruntime: same call as :class:`~styledistill.student.Stylizer`.

    ``OnnxStylizer("model.onnx")`` finds ``model.style.onnx`` through the file's
    metadata. ``size``: long side contents are resized to (default: the size given at
    export); ``None`` in a call keeps that default, ``0`` keeps the image's own size.
    Preprocessing is numpy/PIL: resize the long side, reflect-pad to a multiple of 32
    with a mask, then crop and resize the output back to the input size.
    ``max_pixels``: the largest working image (batch x height x width) to attempt; None
    refuses what would not fit in the free memory (:mod:`styledistill.budget`; onnxruntime
    holds attention as matrices, so its need grows with the square of the tokens).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        size: int | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        ort = _require_ort()
        path = Path(path)
        if path.is_dir():
            candidates = sorted(p for p in path.glob("*.onnx") if ".style." not in p.name)
            if len(candidates) != 1:
                raise CheckpointError(
                    f"{path}: expected one content .onnx file, found {len(candidates)}"
                )
            path = candidates[0]
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        providers = providers or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(
                f"{path}: not a loadable ONNX model ({first_line(exc)})"
            ) from None
        meta = {
            k[len(META_PREFIX) :]: v
            for k, v in self.session.get_modelmeta().custom_metadata_map.items()
            if k.startswith(META_PREFIX)
        }
        if meta.get("role") != "stylizer":
            raise CheckpointError(
                f"{path}: not a styledistill stylizer export (metadata role missing)"
            )
        style_path = path.with_name(meta.get("style_model") or style_model_path(path).name)
        if not style_path.is_file():
            raise CheckpointError(
                f"{style_path}: style encoder missing (exported next to {path.name})"
            )
        try:
            self.style_session = ort.InferenceSession(str(style_path), options, providers=providers)
        except Exception as exc:
            raise CheckpointError(
                f"{style_path}: not a loadable ONNX model ({first_line(exc)})"
            ) from None
        self.path, self.style_path = path, style_path
        self.metadata = meta
        self.pad_multiple = int(meta.get("pad_multiple", "32"))
        self.style_size = int(meta["style_size"]) if meta.get("style_size") else None
        self.size = int(size if size is not None else meta.get("size", "512"))
        self.max_pixels = max_pixels
        try:
            config = json.loads(meta.get("config") or "{}")
        except ValueError:
            config = {}
        channels = config.get("decoder_channels")
        width = meta.get("decoder_width") or (channels[-1] if channels else 128)
        self.bytes_per_pixel = student_bytes_per_pixel(int(width))
        self._heads = int(config.get("num_heads") or 8)
        self._strides = (
            int(config.get("content_stride") or 8),
            int(config.get("style_stride") or 8),
        )

    def __repr__(self) -> str:
        return f"OnnxStylizer({str(self.path)!r}, size={self.size})"

    def check_budget(self, what: str, batch: int, height: int, width: int, keys: int = 0) -> None:
        """Refuse (one line, before allocating) a working ``batch x height x width`` that
        would not fit; ``keys``: style tokens the content attends to besides its own
        (0: a style being encoded)."""
        stride = self._strides[0] if keys else self._strides[1]
        tokens = (height // stride) * (width // stride)
        need = self.bytes_per_pixel * batch * height * width + attention_bytes(
            batch, self._heads, tokens, tokens + keys
        )
        shape = (batch, height, width) if batch > 1 else (height, width)
        check_memory(what, shape, need, max_pixels=self.max_pixels)

    # ---- padded-tensor level (what export verification uses)

    def encode_padded_style(self, style: np.ndarray, style_mask: np.ndarray) -> OnnxStyleCode:
        names = [output.name for output in self.style_session.get_outputs()]
        values = self.style_session.run(names, {"style": style, "style_mask": style_mask})
        tensors = dict(zip(names, values))
        tensors["memory_mask"] = tensors["memory_mask"].astype(bool)
        return OnnxStyleCode(tensors)

    def run_padded(
        self, content: np.ndarray, content_mask: np.ndarray, code: OnnxStyleCode
    ) -> np.ndarray:
        feeds = {
            "content": content,
            "content_mask": content_mask,
            **code.for_batch(content.shape[0]),
        }
        return self.session.run(["image"], feeds)[0]

    # ---- image level

    def _target(self, size: int | None) -> int | None:
        if size is None:
            return self.size or None
        if size < 0:
            raise ConfigError(f"size {size} must be positive (or 0 for native resolution)")
        return size or None

    def encode_style(self, style: Any, *, size: int | None = None) -> OnnxStyleCode:
        """Encode a style image once (path, bytes, PIL, array) for many contents.

        Models with a fixed style size resize the style to it (bilinear); others
        resize it like the content (long side to ``size``, bicubic), as the
        PyTorch ``Stylizer`` does.
        """
        from PIL import Image

        if isinstance(style, OnnxStyleCode):
            return style
        image = load_rgb(style)
        long_side = self._target(size)
        side = self.style_size or long_side
        self.check_budget(
            "encoding the style", 1, *working_shape(*image.shape[-2:], side, self.pad_multiple)
        )
        if self.style_size is None and long_side is not None:
            shape = long_side_shape(*image.shape[-2:], long_side)
            image = _resize_chw(image, *shape, Image.Resampling.BICUBIC)
        if self.style_size is not None and max(image.shape[-2:]) != self.style_size:
            shape = long_side_shape(*image.shape[-2:], self.style_size)
            image = _resize_chw(image, *shape, Image.Resampling.BILINEAR)
        padded, mask = pad_batch(image[None], self.pad_multiple)
        return self.encode_padded_style(padded, mask)

    def stylize_array(
        self, contents: np.ndarray, style: Any, *, size: int | None = None
    ) -> np.ndarray:
        """float32 ``[B,3,H,W]`` (or ``[3,H,W]``) in [0,1] -> stylized, same shape.

        The numpy twin of ``Stylizer.stylize_tensor``: one style for the whole batch.
        """
        from PIL import Image

        code = self.encode_style(style, size=size)
        single = contents.ndim == 3
        batch = contents[None] if single else contents
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ConfigError(f"contents must be [B,3,H,W] or [3,H,W], got {contents.shape}")
        target = self._target(size)
        height, width = batch.shape[-2:]
        self.check_budget(
            "stylizing",
            len(batch),
            *working_shape(height, width, target, self.pad_multiple),
            keys=int(code.memory.shape[1]),
        )
        work = batch.astype(np.float32, copy=False)
        if target is not None and max(height, width) != target:
            new_hw = long_side_shape(height, width, target)
            work = np.stack([_resize_chw(c, *new_hw, Image.Resampling.BICUBIC) for c in work])
        work_h, work_w = work.shape[-2:]
        padded, mask = pad_batch(work, self.pad_multiple)
        out = self.run_padded(padded, mask, code)[:, :, :work_h, :work_w]
        if not np.isfinite(out).all():  # never a black image saved as a result
            raise NonFiniteError.in_output("the student's output")
        if (work_h, work_w) != (height, width):
            out = np.stack([_resize_chw(c, height, width, Image.Resampling.BICUBIC) for c in out])
        out = np.clip(out, 0.0, 1.0)
        return out[0] if single else out

    def __call__(
        self,
        content: Any,
        style: Any,
        *,
        size: int | None = None,
        output: str = "pil",
    ):
        """Stylize one content (or a list) with a style image or an :class:`OnnxStyleCode`.

        ``output="pil"`` gives RGB PIL images; ``"numpy"`` float32 ``[H,W,3]`` arrays
        in [0,1]. Results have the contents' sizes.
        """
        if output not in ("pil", "numpy"):
            raise ConfigError(f"output must be 'pil' or 'numpy', not {output!r}")
        many = isinstance(content, (list, tuple))
        code = self.encode_style(style, size=size)
        results = []
        for source in content if many else [content]:
            image = self.stylize_array(load_rgb(source), code, size=size)
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
            results.append(hwc if output == "numpy" else _to_pil(hwc))
        return results if many else results[0]


def _to_pil(hwc: np.ndarray):
    from PIL import Image

    return Image.fromarray((np.clip(hwc, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode="RGB")
