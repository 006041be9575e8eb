"""One image decoder for the whole project, with no torch: files, bytes, PIL, arrays.

The PyTorch path (:func:`styledistill.images.load_image`) and the torch-free ONNX runner
(:func:`styledistill.onnx_runtime.load_rgb`) both call :func:`decode_image`, so both read
odd files (16-bit, EXIF rotation, alpha, CMYK, palettes) the same way and refuse bad
ones (empty, corrupt, too large, too small) with the same :class:`ImageError` and the
same words.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import StyledistillError
from .plumbing import first_line

__all__ = ["DEFAULT_MAX_PIXELS", "MIN_IMAGE_SIDE", "ImageError", "check_size", "decode_image"]

#: Largest image accepted by default (~64 megapixels, e.g. 8000x8000). Larger files are
#: refused from their header, before decoding, so a decompression bomb cannot exhaust memory.
DEFAULT_MAX_PIXELS = 64_000_000
#: Smallest side accepted by default. Below 16 px there is no texture or structure to
#: transfer, and every model in the project downsamples by at least 8.
MIN_IMAGE_SIDE = 16

# Pillow's own bomb check fires only far above our limit; ours runs first and says more.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageError(StyledistillError, ValueError):
    """Not a usable image. The message names the source and the reason, on one line."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = None if source is None else str(source)
        self.reason = reason
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}{reason}".replace("\n", " "))


def describe(source: object) -> str | None:
    """The name error messages give ``source``: its path, or a PIL image's filename."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "filename", None) or None


def check_size(
    size: tuple[int, int], name: str | None, max_pixels: int | None, min_side: int
) -> None:
    """Refuse a ``(width, height)`` over ``max_pixels`` or with a side under ``min_side``."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} pixels for an input image",
        )
    if min(width, height) < min_side:
        raise ImageError(
            name, f"image is {width}x{height}, smaller than the minimum {min_side}x{min_side}"
        )


def decode_image(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_IMAGE_SIDE,
) -> np.ndarray:
    """A path, encoded bytes, PIL image or numpy array -> float32 ``[3, H, W]`` in [0, 1].

    Arrays are ``HxW`` or ``HxWxC``/``CxHxW`` with C in 1/3/4; uint8, uint16, bool or
    float in [0, 1]. EXIF orientation is applied, alpha is composited on white,
    CMYK/palette images are converted and 16-bit images keep their range. Files are
    size-checked from the header, before decoding. Raises :class:`ImageError`.
    """
    name = describe(source)
    if isinstance(source, np.ndarray):
        chw = _array_to_chw(source, name)
        check_size((chw.shape[-1], chw.shape[-2]), name, max_pixels, min_side)
        return chw
    if isinstance(source, Image.Image):
        check_size(source.size, name, max_pixels, min_side)
        try:
            return _pil_to_chw(source, name)
        except (OSError, SyntaxError, EOFError) as exc:  # a lazily opened, corrupt file
            raise ImageError(name, f"truncated or corrupt image data ({first_line(exc)})") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(name, "empty data (0 bytes)")
        return _decode_stream(io.BytesIO(bytes(source)), name, max_pixels, min_side)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(name, "no such file")
        if path.is_dir():
            raise ImageError(name, "is a directory, not an image file")
        try:
            if path.stat().st_size == 0:
                raise ImageError(name, "empty file (0 bytes)")
            with open(path, "rb") as fh:
                return _decode_stream(fh, name, max_pixels, min_side)
        except PermissionError as exc:
            raise ImageError(name, f"cannot read file ({exc.strerror})") from None
    raise ImageError(name, f"unsupported image source type {type(source).__name__}")


def _decode_stream(fh, name: str | None, max_pixels: int | None, min_side: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fh)
            check_size(image.size, name, max_pixels, min_side)
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not an image (unrecognized file format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(name, f"image too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(name, f"truncated or corrupt image data ({first_line(exc)})") from None
    return _pil_to_chw(image, name)


def _pil_to_chw(image: Image.Image, name: str | None) -> np.ndarray:
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not make a good picture unusable
        pass
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:  # convert("RGB") would clip these at 255: scale the range
        gray = np.asarray(image).astype(np.float32)
        if mode == "F":
            scale = 1.0 if gray.max(initial=0.0) <= 1.0 else 255.0
        elif mode == "I" and gray.max(initial=0) <= 255:
            scale = 255.0
        else:
            scale = 65535.0
        gray = np.clip(gray / scale, 0.0, 1.0)
        return np.ascontiguousarray(np.repeat(gray[None], 3, axis=0))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageError(name, f"cannot convert mode {mode} to RGB ({exc})") from None
    array = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _array_to_chw(array: np.ndarray, name: str | None) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ImageError(name, f"array of shape {array.shape} is not an image (HxW or HxWxC)")
    if array.shape[2] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    channels = array.shape[2]
    if channels not in (1, 3, 4):
        raise ImageError(name, f"array has {channels} channels; expected 1, 3 or 4")
    if array.dtype == np.uint8:
        data = array.astype(np.float32) / np.float32(255.0)
    elif array.dtype == np.uint16:
        data = array.astype(np.float32) / np.float32(65535.0)
    elif array.dtype == np.bool_:
        data = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        data = array.astype(np.float32)
        if not np.isfinite(data).all():
            raise ImageError(name, "array contains NaN or infinite values")
        if data.min() < -1e-3 or data.max() > 1.0 + 1e-3:
            raise ImageError(
                name, f"float array values span [{data.min():.3g}, {data.max():.3g}], not [0, 1]"
            )
        data = np.clip(data, 0.0, 1.0)
    else:
        raise ImageError(name, f"unsupported array dtype {array.dtype}")
    if channels == 1:
        data = np.repeat(data, 3, axis=2)
    elif channels == 4:
        alpha = data[:, :, 3:4]
        data = data[:, :, :3] * alpha + (1.0 - alpha)
    return np.ascontiguousarray(data.transpose(2, 0, 1))
