"""One decoder: the PyTorch loader and the torch-free ONNX loader read and refuse alike."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import modules_imported_by
from styledistill.decode import ImageError, decode_image
from styledistill.images import load_image
from styledistill.onnx_runtime import load_rgb


def _gradient(width: int = 40, height: int = 24) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 6 % 256, ys * 10 % 256, (xs + ys) * 3 % 256], -1).astype(np.uint8)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _encoded(Image.fromarray(_gradient()), "JPEG", exif=exif, quality=95)


def _gray16_png() -> bytes:
    values = (np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) * 60).astype(np.uint16)
    return _encoded(Image.fromarray(values), "PNG")  # uint16 -> mode I;16


def _rgba_png() -> bytes:
    rgba = np.dstack([_gradient(), np.linspace(0, 255, 40, dtype=np.uint8)[None].repeat(24, 0)])
    return _encoded(Image.fromarray(rgba, mode="RGBA"), "PNG")


def _palette_with_transparency_png() -> bytes:
    image = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encoded(image, "PNG", transparency=0)


def _cmyk_jpeg() -> bytes:
    return _encoded(Image.fromarray(_gradient()).convert("CMYK"), "JPEG", quality=95)


GOOD_SOURCES = {
    "rgb png": lambda: _encoded(Image.fromarray(_gradient()), "PNG"),
    "exif-rotated jpeg": _exif_rotated_jpeg,
    "16-bit gray png": _gray16_png,
    "rgba png": _rgba_png,
    "palette with transparency": _palette_with_transparency_png,
    "cmyk jpeg": _cmyk_jpeg,
    "uint8 HxWx3 array": _gradient,
    "uint16 HxW array": lambda: (np.arange(24 * 40).reshape(24, 40) * 50).astype(np.uint16),
    "float CxHxW array": lambda: _gradient().transpose(2, 0, 1).astype(np.float32) / 255,
    "float HxWx4 array": lambda: np.random.default_rng(0).uniform(0, 1, (24, 40, 4)),
    "bool array": lambda: np.eye(24, 40, dtype=bool),
    "PIL LA image": lambda: Image.fromarray(_gradient()).convert("LA"),
}


@pytest.mark.parametrize("kind", sorted(GOOD_SOURCES))
@pytest.mark.parametrize("as_file", [False, True])
def test_torch_and_onnx_loaders_decode_identically(kind, as_file, tmp_path):
    source = GOOD_SOURCES[kind]()
    if as_file and isinstance(source, bytes):
        path = tmp_path / "image.bin"
        path.write_bytes(source)
        source = path
    from_torch = load_image(source).numpy()
    from_onnx = load_rgb(source)
    assert from_onnx.dtype == np.float32 and from_onnx.shape[0] == 3
    np.testing.assert_array_equal(from_torch, from_onnx)
    assert from_onnx.min() >= 0.0 and from_onnx.max() <= 1.0


def test_decoder_applies_exif_16_bit_range_alpha_and_cmyk():
    rotated = decode_image(_exif_rotated_jpeg())
    assert rotated.shape == (3, 40, 24)  # 40 wide, 24 high stored; displayed upright
    gray16 = decode_image(_gray16_png())
    assert gray16[0, 0, 1] == pytest.approx(60 / 65535)  # not clipped at 255 nor 8-bit
    assert np.unique(gray16).size > 256
    rgba = decode_image(_rgba_png())
    np.testing.assert_allclose(rgba[:, :, 0], 1.0)  # alpha 0 column: composited on white
    cmyk = decode_image(_cmyk_jpeg())
    np.testing.assert_allclose(cmyk, _gradient().transpose(2, 0, 1) / 255, atol=0.06)


def _truncated_png() -> bytes:
    return _encoded(Image.fromarray(_gradient()), "PNG")[:60]


BAD_SOURCES = {
    "empty file": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "text file": (lambda p: p.write_text("notes"), "not an image (unrecognized file format)"),
    "truncated png": (lambda p: p.write_bytes(_truncated_png()), "truncated or corrupt"),
    "too small": (
        lambda p: p.write_bytes(_encoded(Image.new("RGB", (8, 30)), "PNG")),
        "image is 8x30, smaller than the minimum 16x16",
    ),
    "over the pixel limit": (
        lambda p: p.write_bytes(_encoded(Image.new("RGB", (300, 300)), "PNG")),
        "image is 300x300 = 90,000 pixels, over the limit of 50,000 pixels for an input image",
    ),
    "directory": (lambda p: p.mkdir(), "is a directory, not an image file"),
    "missing": (lambda p: None, "no such file"),
}


@pytest.mark.parametrize("kind", sorted(BAD_SOURCES))
def test_torch_and_onnx_loaders_refuse_with_the_same_error(kind, tmp_path):
    make, fragment = BAD_SOURCES[kind]
    path = tmp_path / "bad.png"
    make(path)
    messages = []
    for loader in (load_image, load_rgb):
        with pytest.raises(ImageError) as info:
            loader(path, max_pixels=50_000)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"{path}: ") and fragment in messages[0]
    assert "\n" not in messages[0]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (b"", "empty data (0 bytes)"),
        (np.full((20, 20, 3), np.nan, np.float32), "NaN or infinite"),
        (np.full((20, 20, 3), 2.0, np.float32), "not [0, 1]"),
        (np.zeros((20, 20, 5), np.uint8), "5 channels"),
        (np.zeros((20, 20, 3), np.int64), "unsupported array dtype"),
        (12, "unsupported image source type int"),
    ],
)
def test_bad_data_and_arrays_are_refused_alike(source, fragment):
    messages = []
    for loader in (load_image, load_rgb):
        with pytest.raises(ImageError) as info:
            loader(source)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert fragment in messages[0]


def test_decoder_needs_no_torch():
    code = (
        "import numpy as np; from styledistill.onnx_runtime import load_rgb; "
        "load_rgb(np.zeros((16, 16, 3), np.uint8))"
    )
    assert modules_imported_by(code, ["torch"]) == []
