"""styledistill.images: every odd input is either converted exactly or refused in one line."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from styledistill.errors import StyledistillError
from styledistill.images import (
    MIN_IMAGE_SIDE,
    FittedImage,
    ImageError,
    center_crop_resize,
    fit_long_side,
    image_grid,
    list_images,
    load_image,
    resize_long_side,
    save_image,
    to_pil,
    to_tensor,
    unfit,
)

# --------------------------------------------------------------------------- helpers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_16bit_rgb(array: np.ndarray) -> bytes:
    """Encode an HxWx3 uint16 array as a 16-bit RGB PNG (Pillow cannot write one)."""
    height, width, _ = array.shape
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite a PNG's declared size (and the IHDR CRC) without touching its pixels."""
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return png[:16] + bytes(ihdr) + crc + png[33:]


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _assert_one_line_error(err: ImageError, path: Path, cause: str) -> None:
    message = str(err)
    assert "\n" not in message
    assert str(path) in message
    assert cause in message
    assert isinstance(err, StyledistillError)


def _noise_rgb(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


# --------------------------------------------------------------------------- modes


def test_grayscale_l_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (32, 24), 128).save(path)
    image = load_image(path)
    assert image.shape == (3, 24, 32) and image.dtype == torch.float32
    assert torch.allclose(image, torch.full_like(image, 128 / 255))


def test_palette_p_uses_palette_colours(tmp_path):
    palette_image = Image.new("P", (32, 32), 0)
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    palette_image.paste(1, (16, 0, 32, 32))
    path = tmp_path / "palette.png"
    palette_image.save(path)
    image = load_image(path)
    assert torch.allclose(image[:, 5, 5], torch.tensor([10, 20, 30]) / 255)
    assert torch.allclose(image[:, 5, 20], torch.tensor([200, 100, 50]) / 255)


def test_palette_p_with_transparency_is_composited_on_white(tmp_path):
    palette_image = Image.new("P", (32, 32), 0)
    palette_image.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    palette_image.paste(1, (16, 0, 32, 32))
    path = tmp_path / "palette_alpha.png"
    palette_image.save(path, transparency=0)  # index 0 (black) is fully transparent
    image = load_image(path)
    assert torch.allclose(image[:, 5, 5], torch.ones(3))  # white, not black
    assert torch.allclose(image[:, 5, 20], torch.tensor([0.0, 1.0, 0.0]))


def test_cmyk_tiff_converts_exactly(tmp_path):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 0, 0))  # magenta ink
    cmyk.paste((255, 0, 0, 0), (0, 16, 32, 32))  # cyan ink
    path = tmp_path / "cmyk.tif"
    cmyk.save(path)
    image = load_image(path)
    assert torch.allclose(image[:, 4, 4], torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(image[:, 20, 4], torch.tensor([0.0, 1.0, 1.0]))


def test_cmyk_jpeg_loads_as_rgb(tmp_path):
    path = _write(
        tmp_path, "cmyk.jpg", _encode(Image.new("CMYK", (32, 32), (0, 255, 0, 0)), "JPEG")
    )
    image = load_image(path)
    assert image.shape == (3, 32, 32)
    assert torch.allclose(image[:, 16, 16], torch.tensor([1.0, 0.0, 1.0]), atol=0.03)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    rgba.paste((255, 0, 0, 128), (0, 0, 16, 32))  # half-transparent red
    rgba.paste((0, 0, 0, 0), (0, 0, 8, 32))  # fully transparent black
    path = tmp_path / "rgba.png"
    rgba.save(path)
    image = load_image(path)
    assert torch.allclose(image[:, 4, 4], torch.ones(3))
    half = 1 - 128 / 255  # white shows through where red is half transparent
    assert torch.allclose(image[:, 4, 12], torch.tensor([1.0, half, half]), atol=1.5 / 255)
    assert torch.allclose(image[:, 4, 20], torch.tensor([1.0, 0.0, 0.0]))


def test_la_is_composited_on_white(tmp_path):
    la = Image.new("LA", (32, 32), (0, 255))
    la.paste((0, 0), (0, 0, 16, 32))
    path = tmp_path / "la.png"
    la.save(path)
    image = load_image(path)
    assert torch.allclose(image[:, 4, 4], torch.ones(3))
    assert torch.allclose(image[:, 4, 20], torch.zeros(3))


def test_16bit_grayscale_png_scales_by_65535(tmp_path):
    values = np.zeros((32, 32), dtype=np.uint16)
    values[:, 8:16] = 65535
    values[:, 16:24] = 32768
    values[:, 24:] = 200  # dark: must stay dark, not be read as 8-bit
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert image[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert torch.allclose(image[:, 0, 10], torch.ones(3))
    assert torch.allclose(image[:, 0, 20], torch.full((3,), 32768 / 65535))
    assert torch.allclose(image[:, 0, 28], torch.full((3,), 200 / 65535))


def test_16bit_rgb_png_scales_to_unit_range(tmp_path):
    array = np.zeros((32, 32, 3), dtype=np.uint16)
    array[..., 0] = 65535
    array[..., 1] = 32896  # 0x8080 -> 128/255 when reduced to 8 bits
    array[..., 2] = 0
    path = _write(tmp_path, "rgb16.png", _png_16bit_rgb(array))
    image = load_image(path)
    assert image.shape == (3, 32, 32)
    assert torch.allclose(image[:, 7, 7], torch.tensor([1.0, 32896 / 65535, 0.0]), atol=1 / 255)


@pytest.mark.parametrize("orientation, top, bottom", [(6, "red", "blue"), (8, "blue", "red")])
def test_exif_orientation_is_applied(tmp_path, orientation, top, bottom):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))  # stored landscape: red left, blue right
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _write(tmp_path, "rotated.jpg", _encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    image = load_image(path)
    assert image.shape == (3, 40, 20)  # displayed portrait
    colours = {"red": torch.tensor([1.0, 0.0, 0.0]), "blue": torch.tensor([0.0, 0.0, 1.0])}
    assert torch.allclose(image[:, 3, 10], colours[top], atol=0.05)
    assert torch.allclose(image[:, 36, 10], colours[bottom], atol=0.05)


# --------------------------------------------------------------------------- refusals


def test_one_pixel_image_is_refused_with_the_minimum(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path, f"minimum {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")


def test_just_below_minimum_is_refused_and_minimum_is_accepted(tmp_path):
    small = tmp_path / "thin.png"
    Image.new("RGB", (MIN_IMAGE_SIDE - 1, 200)).save(small)
    with pytest.raises(ImageError) as info:
        load_image(small)
    _assert_one_line_error(info.value, small, f"{MIN_IMAGE_SIDE - 1}x200")
    ok = tmp_path / "ok.png"
    Image.new("RGB", (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)).save(ok)
    assert load_image(ok).shape == (3, MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)
    assert load_image(small, min_side=8).shape == (3, 200, MIN_IMAGE_SIDE - 1)


def test_declared_size_over_max_pixels_is_refused_before_decoding(tmp_path):
    # a 64x64 PNG whose header claims 100000x100000: decoding it would need 30 GB
    bomb = _with_ihdr_size(_encode(Image.new("RGB", (64, 64)), "PNG"), 100_000, 100_000)
    path = _write(tmp_path, "bomb.png", bomb)
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path, "over the limit")
    assert "100000x100000" in str(info.value)


def test_max_pixels_argument_is_respected(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    with pytest.raises(ImageError) as info:
        load_image(path, max_pixels=64 * 64 - 1)
    _assert_one_line_error(info.value, path, "max_pixels")
    assert load_image(path, max_pixels=64 * 64).shape == (3, 64, 64)
    assert load_image(path, max_pixels=None).shape == (3, 64, 64)


def test_zero_byte_file(tmp_path):
    path = _write(tmp_path, "empty.png", b"")
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path, "empty file (0 bytes)")


def test_zero_bytes_in_memory():
    with pytest.raises(ImageError, match="empty data"):
        load_image(b"")


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_file(tmp_path, fmt, suffix):
    data = _encode(_noise_rgb(), fmt)
    path = _write(tmp_path, f"cut.{suffix}", data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path, "truncated or corrupt image data")


def test_text_file_renamed_png(tmp_path):
    path = _write(tmp_path, "notes.png", b"these are my notes, not a picture\n" * 4)
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path, "not an image (unrecognized file format)")


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere" / "missing.jpg"
    with pytest.raises(ImageError) as info:
        load_image(path)
    _assert_one_line_error(info.value, path, "no such file")


def test_directory(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(tmp_path)
    _assert_one_line_error(info.value, tmp_path, "is a directory")


def test_string_path_is_accepted(tmp_path):
    path = tmp_path / "photo.png"
    _noise_rgb().save(path)
    assert torch.equal(load_image(str(path)), load_image(path))


# --------------------------------------------------------------------------- sources


def test_bytes_source_equals_file_source(tmp_path):
    data = _encode(_noise_rgb(), "PNG")
    path = _write(tmp_path, "noise.png", data)
    assert torch.equal(load_image(data), load_image(path))
    assert torch.equal(load_image(bytearray(data)), load_image(path))


def test_pil_source_is_exact():
    pil = _noise_rgb(32)
    image = load_image(pil)
    expected = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(image, expected)


def test_numpy_uint8_uint16_and_float_agree():
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = load_image(u8)
    assert image.shape == (3, 20, 30)
    assert torch.allclose(image, torch.from_numpy(u8).permute(2, 0, 1).float() / 255)
    u16 = u8.astype(np.uint16) * 257  # the same levels in 16 bits
    assert torch.allclose(load_image(u16), image, atol=1e-6)
    f = u8.astype(np.float64) / 255
    assert torch.allclose(load_image(f), image, atol=1e-6)


def test_numpy_grayscale_and_rgba():
    gray = np.full((20, 20), 0.25, dtype=np.float32)
    assert torch.allclose(load_image(gray), torch.full((3, 20, 20), 0.25))
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:, 10:, 3] = 255  # left half transparent, right half opaque red
    image = load_image(rgba)
    assert torch.allclose(image[:, 5, 5], torch.ones(3))
    assert torch.allclose(image[:, 5, 15], torch.tensor([1.0, 0.0, 0.0]))


def test_numpy_bad_values_are_refused():
    with pytest.raises(ImageError, match=r"not \[0, 1\]"):
        load_image(np.full((20, 20, 3), 2.0))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((20, 20, 3), np.nan))
    with pytest.raises(ImageError, match="channels"):
        load_image(np.zeros((20, 20, 5), dtype=np.uint8))
    with pytest.raises(ImageError, match="dtype"):
        load_image(np.zeros((20, 20, 3), dtype=np.int64))


def test_tensor_sources():
    rng = np.random.default_rng(2)
    chw = torch.from_numpy(rng.uniform(0, 1, (3, 20, 24)).astype(np.float32))
    assert torch.equal(load_image(chw), chw)
    assert torch.equal(load_image(chw.unsqueeze(0)), chw)
    assert torch.equal(load_image(chw.double()), chw)
    gray = chw[:1]
    assert torch.equal(load_image(gray), gray.repeat(3, 1, 1))
    as_bytes = (chw * 255).round().to(torch.uint8)
    assert torch.allclose(load_image(as_bytes), as_bytes.float() / 255)  # 8-bit, not clamped
    with pytest.raises(ImageError, match=r"not \[3, H, W\]"):
        load_image(torch.zeros(20, 24, 3))
    with pytest.raises(ImageError, match="NaN"):
        load_image(torch.full((3, 20, 20), float("nan")))


def test_unsupported_source_type():
    with pytest.raises(ImageError, match="unsupported image source type int"):
        load_image(42)  # type: ignore[arg-type]


def test_to_pil_and_to_tensor_round_trip():
    pil = _noise_rgb(16)
    assert np.array_equal(np.asarray(to_pil(to_tensor(pil))), np.asarray(pil))
    assert to_tensor(Image.new("RGB", (1, 1))).shape == (3, 1, 1)  # no size checks


def test_to_pil_composites_alpha_like_load_image():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert to_pil(rgba).getpixel((0, 0)) == (255, 255, 255)


# --------------------------------------------------------------------------- saving


def test_save_image_round_trip_png_and_jpeg(tmp_path, noise_image):
    png = save_image(noise_image, tmp_path / "out" / "a.png")
    assert png == tmp_path / "out" / "a.png"
    assert torch.allclose(load_image(png), noise_image, atol=0.5 / 255 + 1e-6)
    jpg = save_image(to_pil(noise_image), tmp_path / "a.jpg")
    assert Image.open(jpg).format == "JPEG"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.jpg", "a.png", "out"]


def test_save_image_uses_normal_file_permissions(tmp_path, smooth_image):
    path = save_image(smooth_image, tmp_path / "shared.png")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_save_image_refuses_unknown_suffix(tmp_path, smooth_image):
    with pytest.raises(ImageError, match=r"cannot save with suffix '\.xyz'"):
        save_image(smooth_image, tmp_path / "a.xyz")


def test_save_image_failure_mid_write_keeps_old_file(tmp_path, monkeypatch, smooth_image):
    path = tmp_path / "result.png"
    path.write_bytes(b"old content")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_image(smooth_image, path)
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]  # no temp file left


def test_save_image_failure_leaves_no_new_file(tmp_path, monkeypatch, smooth_image):
    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(smooth_image, tmp_path / "new.jpg")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- resizing


def test_center_crop_resize_is_exact_and_centred():
    image = torch.zeros(3, 40, 60)
    image[1, :, 10:50] = 1.0  # green centre square, black 10 px bars left and right
    out = center_crop_resize(image, 32)
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out, torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 32, 32))
    assert center_crop_resize(to_pil(image), 17).shape == (3, 17, 17)
    assert center_crop_resize(image, 40).shape == (3, 40, 40)


def test_resize_long_side_keeps_aspect():
    assert resize_long_side(torch.rand(3, 301, 457), 256).shape == (3, 169, 256)
    assert resize_long_side(torch.rand(2, 3, 457, 301), 128).shape == (2, 3, 128, 84)


def test_fit_long_side_pads_odd_size_and_unfit_restores_it():
    rng = np.random.default_rng(3)
    image = torch.from_numpy(rng.uniform(0, 1, (3, 301, 457)).astype(np.float32))
    fitted = fit_long_side(image, None, multiple=32)
    assert isinstance(fitted, FittedImage)
    assert fitted.image.shape == (3, 320, 480)
    assert fitted.box == (0, 0, 301, 457)
    assert fitted.original_size == (301, 457)
    assert fitted.mask.shape == (320, 480)
    assert (
        not fitted.mask[:301, :457].any() and fitted.mask[301:].all() and fitted.mask[:, 457:].all()
    )
    assert torch.equal(fitted.image[:, :301, :457], image)
    assert torch.equal(unfit(fitted.image, fitted), image)


def test_fit_long_side_resized_round_trip(smooth_image):
    big = torch.nn.functional.interpolate(
        smooth_image[None], size=(301, 457), mode="bilinear", align_corners=True
    )[0]
    fitted = fit_long_side(big, 256, multiple=32)
    assert fitted.image.shape == (3, 192, 256)
    assert fitted.box == (0, 0, 169, 256)
    restored = unfit(fitted.image, fitted)
    assert restored.shape == (3, 301, 457)
    assert (restored - big).abs().max() < 0.02  # smooth image survives the resize


def test_fit_long_side_multiple_of_32_is_untouched_and_batched():
    image = torch.rand(2, 3, 256, 320)
    fitted = fit_long_side(image, None)
    assert torch.equal(fitted.image, image)
    assert not fitted.mask.any() and fitted.mask.shape == (2, 256, 320)
    assert torch.equal(unfit(fitted.image, fitted), image)


def test_fit_long_side_tiny_image_pads_by_replication():
    fitted = fit_long_side(torch.rand(3, 5, 7), None, multiple=32)
    assert fitted.image.shape == (3, 32, 32)
    assert fitted.box == (0, 0, 5, 7)


# --------------------------------------------------------------------------- grids


def test_image_grid_layout_and_cells():
    red = torch.zeros(3, 32, 32)
    red[0] = 1
    blue = torch.zeros(3, 16, 32)
    blue[2] = 1
    rows = [[red, blue, None], [blue, red]]
    plain = image_grid(rows, cell_size=64, padding=6)
    assert plain.size == (3 * (64 + 6) + 6, 2 * (64 + 6) + 6)
    assert plain.getpixel((6 + 32, 6 + 32)) == (255, 0, 0)  # centre of cell (0, 0)
    assert plain.getpixel((6 + 70 + 32, 6 + 32)) == (0, 0, 255)  # centre of cell (0, 1)
    assert plain.getpixel((6 + 70 + 32, 6 + 4)) == (255, 255, 255)  # letterboxed, not stretched
    assert plain.getpixel((6 + 140 + 32, 6 + 32)) == (255, 255, 255)  # None cell is empty

    labelled = image_grid(
        rows,
        cell_size=64,
        column_labels=["content", "style", "output"],
        row_labels=["first row", "second"],
        captions=[["a", "b", "c"], ["d", "e"]],
        title="grid",
    )
    assert labelled.width > plain.width and labelled.height > plain.height
    pixels = np.asarray(labelled)
    header = pixels[:20]
    assert (header.sum(axis=2) < 200).any()  # dark text in the title/header band
    left = pixels[:, :20]
    assert (left.sum(axis=2) < 200).any()  # row labels on the left


def test_image_grid_needs_rows():
    with pytest.raises(ValueError):
        image_grid([])


def test_list_images(tmp_path, smooth_image):
    save_image(smooth_image, tmp_path / "b.png")
    save_image(smooth_image, tmp_path / "sub" / "a.JPG")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    save_image(smooth_image, tmp_path / ".hidden" / "c.png")
    assert list_images(tmp_path) == [tmp_path / "b.png", tmp_path / "sub" / "a.JPG"]
    assert list_images(tmp_path, recursive=False) == [tmp_path / "b.png"]
    with pytest.raises(ImageError, match="no such directory"):
        list_images(tmp_path / "missing")


def test_lazily_opened_corrupt_pil_image_is_an_image_error(tmp_path):
    data = _encode(_noise_rgb(), "PNG")
    path = _write(tmp_path, "cut.png", data[: len(data) // 2])
    lazy = Image.open(path)  # header only: pixels are read on first use
    with pytest.raises(ImageError) as info:
        load_image(lazy)
    _assert_one_line_error(info.value, path, "truncated or corrupt image data")


@pytest.mark.parametrize("suffix", ["webp", "bmp", "tif", "jpeg"])
def test_other_formats_round_trip(tmp_path, smooth_image, suffix):
    path = save_image(smooth_image, tmp_path / f"image.{suffix}")
    loaded = load_image(path)
    assert loaded.shape == smooth_image.shape
    assert (loaded - smooth_image).abs().mean() < 0.02


def test_bilevel_and_first_gif_frame(tmp_path):
    bilevel = Image.new("1", (24, 24), 1)
    bilevel.paste(0, (0, 0, 12, 24))
    path = tmp_path / "bw.png"
    bilevel.save(path)
    image = load_image(path)
    assert torch.equal(image[:, 0, 0], torch.zeros(3)) and torch.equal(
        image[:, 0, 20], torch.ones(3)
    )
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert torch.allclose(load_image(gif)[:, 5, 5], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_make_shareable_undoes_mkstemp_private_mode(tmp_path):
    """Atomic writers use mkstemp (0600): the final file must get the umask's mode."""
    import tempfile

    from styledistill.plumbing import make_shareable

    fd, name = tempfile.mkstemp(dir=tmp_path)
    os.close(fd)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    make_shareable(name)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o666 & ~umask


def test_atomic_path_replaces_on_success_and_leaves_nothing_on_failure(tmp_path):
    import os

    from styledistill.plumbing import atomic_path

    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_path(target, suffix=".txt") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt"
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # open()'s mode, not mkstemp's 0600
