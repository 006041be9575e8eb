"""Image I/O for the torch side of the project: load, resize/pad, save atomically, grids.

Every image inside styledistill is a float32 tensor ``[3, H, W]`` (or ``[B, 3, H, W]``)
in ``[0, 1]``, RGB. Files are decoded by :mod:`styledistill.decode` (shared with the
torch-free ONNX runner), so every command handles odd files (CMYK, 16-bit, EXIF
rotation, alpha, corrupt data) the same way and fails with the same one-line messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .budget import long_side_shape
from .decode import (
    DEFAULT_MAX_PIXELS,
    MIN_IMAGE_SIDE,
    ImageError,
    check_size,
    decode_image,
    describe,
)
from .errors import NonFiniteError
from .plumbing import atomic_path

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MIN_IMAGE_SIDE",
    "FittedImage",
    "ImageError",
    "ImageSource",
    "center_crop_resize",
    "fit_long_side",
    "image_format",
    "image_grid",
    "list_images",
    "load_image",
    "require_finite",
    "resize_long_side",
    "save_image",
    "square_crops",
    "to_pil",
    "to_tensor",
    "unfit",
]

#: File endings treated as images when listing folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray, torch.Tensor]  # noqa: UP007 (runtime alias, py3.10)

_SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

# Pillow's settings (bomb limit, truncated files) are set once, in styledistill.decode.


# --------------------------------------------------------------------------- loading


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_IMAGE_SIDE,
) -> torch.Tensor:
    """Load any supported image as a float32 RGB tensor ``[3, H, W]`` in ``[0, 1]``.

    ``source`` may be a path, encoded bytes, a PIL image, a numpy array (``HxW``,
    ``HxWxC`` with C in 1/3/4; uint8, uint16 or float in [0, 1]) or a tensor
    (``[3,H,W]``/``[1,3,H,W]`` in [0, 1]). EXIF orientation is applied, alpha is
    composited on white, CMYK/palette/16-bit are converted, by the same decoder as the
    ONNX runner (:func:`styledistill.decode.decode_image`). Raises :class:`ImageError`.
    """
    if isinstance(source, torch.Tensor):
        name = describe(source)
        tensor = _tensor_from_tensor(source, name)
        check_size((tensor.shape[-1], tensor.shape[-2]), name, max_pixels, min_side)
        return tensor
    return torch.from_numpy(decode_image(source, max_pixels=max_pixels, min_side=min_side))


def _tensor_from_tensor(tensor: torch.Tensor, name: str | None) -> torch.Tensor:
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
        raise ImageError(name, f"tensor of shape {tuple(tensor.shape)} is not [3, H, W]")
    if tensor.dtype == torch.uint8:  # 8-bit pixels, not [0, 1] floats
        tensor = tensor.detach().to("cpu", torch.float32) / 255.0
    elif tensor.dtype == torch.bool:
        tensor = tensor.detach().to("cpu", torch.float32)
    elif not tensor.is_floating_point():
        raise ImageError(name, f"unsupported tensor dtype {tensor.dtype}; use float in [0, 1]")
    tensor = tensor.detach().to("cpu", torch.float32)
    if not torch.isfinite(tensor).all():
        raise ImageError(name, "tensor contains NaN or infinite values")
    if tensor.shape[0] == 1:
        tensor = tensor.repeat(3, 1, 1)
    return tensor.clamp(0.0, 1.0).contiguous()


def list_images(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension), sorted, hidden files skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(root, "not a directory" if root.exists() else "no such directory")
    pattern = "**/*" if recursive else "*"
    found = [
        path
        for path in root.glob(pattern)
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and not path.is_dir()
    ]
    return sorted(found)


def require_finite(images: torch.Tensor, what: str) -> None:
    """Raise :class:`~styledistill.errors.NonFiniteError` if ``images`` hold NaN or infinity.

    A model's output goes through this before it is saved: cast to 8 bits, NaN becomes
    black, and a black image must never be written as a result.
    """
    if not bool(torch.isfinite(images).all()):
        raise NonFiniteError.in_output(what)


# --------------------------------------------------------------------------- conversion


def to_pil(image: torch.Tensor | Image.Image) -> Image.Image:
    """``[3,H,W]``/``[1,3,H,W]`` tensor in [0, 1] -> 8-bit RGB PIL image (rounded)."""
    if isinstance(image, Image.Image):
        # alpha, 16-bit and palette images take the same path as load_image (alpha on white)
        return image if image.mode == "RGB" else to_pil(to_tensor(image))
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_pil takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a [3, H, W] tensor, got shape {tuple(image.shape)}")
    if image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    array = image.detach().float().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy(), mode="RGB")


def to_tensor(image: Image.Image | np.ndarray | torch.Tensor) -> torch.Tensor:
    """PIL/numpy/tensor -> float32 ``[3,H,W]`` in [0, 1], with no size checks."""
    return load_image(image, max_pixels=None, min_side=1)


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format :func:`save_image` writes for ``path``'s suffix; ImageError if none."""
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"cannot save with suffix '{path.suffix}'; use .png or .jpg")
    return fmt


def save_image(
    image: torch.Tensor | Image.Image, path: str | os.PathLike, *, quality: int = 95
) -> Path:
    """Write an image atomically: to a temp file in the same folder, fsync, then rename.

    A crash or a full disk never leaves a half-written file under ``path``; the
    format comes from the suffix (png, jpg/jpeg, webp, bmp, tif).
    """
    path = Path(path)
    fmt = image_format(path)
    pil = to_pil(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
        pil.save(fh, format=fmt, **options)
        fh.flush()
        os.fsync(fh.fileno())
    return path


# --------------------------------------------------------------------------- resizing


def _as_pil(image: torch.Tensor | Image.Image) -> Image.Image:
    return to_pil(image)


def center_crop_resize(image: torch.Tensor | Image.Image, size: int) -> torch.Tensor:
    """StyleID's preprocessing: centre-crop to the short side, then LANCZOS to size x size."""
    pil = _as_pil(image)
    width, height = pil.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    pil = pil.crop((left, top, left + side, top + side))
    if side != size:
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    return to_tensor(pil)


def square_crops(image: torch.Tensor, count: int) -> list[torch.Tensor]:
    """``count`` square crops of ``image [3,H,W]`` at fixed spots: the centre at the full
    short side, then the four corners zoomed in to 60% of it (more views of one photo)."""
    height, width = image.shape[-2:]
    side = min(height, width)
    boxes = [((height - side) // 2, (width - side) // 2, side)]
    small = int(side * 0.6)
    spots = [(0, 0), (height - small, width - small), (0, width - small), (height - small, 0)]
    boxes += [(top, left, small) for top, left in spots[: max(0, count - 1)]]
    return [image[:, t : t + s, left : left + s] for t, left, s in boxes[:count]]


def resize_long_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the long side is ``size``, keeping the aspect ratio (antialiased bicubic).

    Accepts ``[3,H,W]`` or ``[B,3,H,W]``.
    """
    batched = image.ndim == 4
    x = image if batched else image.unsqueeze(0)
    height, width = x.shape[-2:]
    new_h, new_w = long_side_shape(height, width, size)
    if (new_h, new_w) != (height, width):
        x = F.interpolate(
            x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0.0, 1.0)
    return x if batched else x[0]


@dataclass(frozen=True)
class FittedImage:
    """A resized, padded image plus what is needed to undo it.

    ``box`` is ``(top, left, height, width)`` of the real content inside ``image``;
    ``mask`` is True on padding; ``original_size`` is ``(H, W)`` before resizing.
    """

    image: torch.Tensor
    mask: torch.Tensor
    box: tuple[int, int, int, int]
    original_size: tuple[int, int]


def fit_long_side(
    image: torch.Tensor, size: int | None = 512, *, multiple: int = 32, pad_mode: str = "reflect"
) -> FittedImage:
    """The student's policy: long side to ``size`` (None keeps it), pad to a multiple.

    Padding goes right and bottom; ``pad_mode`` is ``"reflect"``, ``"replicate"`` or
    ``"constant"`` (zeros). Works on ``[3,H,W]`` or ``[B,3,H,W]``.
    """
    original_size = tuple(image.shape[-2:])
    resized = image if size is None else resize_long_side(image, size)
    height, width = resized.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    batched = resized.ndim == 4
    x = resized if batched else resized.unsqueeze(0)
    if pad_h or pad_w:
        mode = pad_mode
        if mode == "reflect" and (pad_h >= height or pad_w >= width):
            mode = "replicate"  # reflection needs more pixels than the pad
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    mask = torch.zeros(x.shape[0], x.shape[-2], x.shape[-1], dtype=torch.bool, device=x.device)
    mask[:, height:, :] = True
    mask[:, :, width:] = True
    if not batched:
        x, mask = x[0], mask[0]
    return FittedImage(x, mask, (0, 0, int(height), int(width)), original_size)  # type: ignore[arg-type]


def unfit(output: torch.Tensor, fitted: FittedImage) -> torch.Tensor:
    """Crop the padding away and resize back to the original size."""
    top, left, height, width = fitted.box
    x = output[..., top : top + height, left : left + width]
    if (height, width) != tuple(fitted.original_size):
        batched = x.ndim == 4
        x = x if batched else x.unsqueeze(0)
        x = F.interpolate(
            x, size=fitted.original_size, mode="bicubic", align_corners=False, antialias=True
        ).clamp_(0.0, 1.0)
        x = x if batched else x[0]
    return x


# --------------------------------------------------------------------------- grids


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fit_into(image: Image.Image, cell: int) -> Image.Image:
    image = image.copy()
    image.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    if max(image.size) < cell:
        scale = cell / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.LANCZOS,
        )
    return image


def image_grid(
    rows: Sequence[Sequence[torch.Tensor | Image.Image | None]],
    *,
    column_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    cell_size: int = 256,
    padding: int = 6,
    background: tuple[int, int, int] = (255, 255, 255),
    title: str | None = None,
) -> Image.Image:
    """A labelled grid (e.g. rows of content | style | teacher | student) for reports.

    Each cell keeps its aspect ratio inside a ``cell_size`` square; ``None`` leaves a
    cell empty. ``column_labels`` head the columns, ``row_labels`` sit on the left,
    ``captions[r][c]`` under each cell.
    """
    if not rows:
        raise ValueError("image_grid needs at least one row")
    n_cols = max(len(row) for row in rows)
    font_size = max(10, cell_size // 14)
    font = _font(font_size)
    line = font_size + 6
    header = line if column_labels else 0
    title_h = line + 4 if title else 0
    caption_h = line if captions else 0
    label_w = 0
    if row_labels:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        label_w = max(int(probe.textlength(str(lbl), font=font)) for lbl in row_labels) + 12
    cell_h = cell_size + caption_h
    width = label_w + n_cols * (cell_size + padding) + padding
    height = title_h + header + len(rows) * (cell_h + padding) + padding
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    text_color = (20, 20, 20)
    if title:
        draw.text((padding, padding), title, fill=text_color, font=font)
    if column_labels:
        for c, label in enumerate(column_labels[:n_cols]):
            x = label_w + padding + c * (cell_size + padding)
            draw.text((x, title_h + padding // 2), str(label), fill=text_color, font=font)
    for r, row in enumerate(rows):
        y0 = title_h + header + padding + r * (cell_h + padding)
        if row_labels and r < len(row_labels):
            draw.text(
                (4, y0 + cell_size // 2 - font_size // 2),
                str(row_labels[r]),
                fill=text_color,
                font=font,
            )
        for c, cell in enumerate(row):
            x0 = label_w + padding + c * (cell_size + padding)
            if cell is not None:
                thumb = _fit_into(_as_pil(cell), cell_size)
                canvas.paste(
                    thumb,
                    (x0 + (cell_size - thumb.width) // 2, y0 + (cell_size - thumb.height) // 2),
                )
            if captions and r < len(captions) and c < len(captions[r]) and captions[r][c]:
                draw.text((x0, y0 + cell_size + 2), str(captions[r][c]), fill=text_color, font=font)
    return canvas
