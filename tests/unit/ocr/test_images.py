"""Image intake: limits, formats, corrupt data, EXIF orientation."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from serve_app.errors import ApiError
from serve_app.ocr.images import decode_image

LIMITS = dict(max_bytes=2_000_000, max_pixels=40_000_000, max_side=2000)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def error(data: bytes, **limits) -> ApiError:
    with pytest.raises(ApiError) as info:
        decode_image(data, **{**LIMITS, **limits})
    return info.value


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats(fmt: str):
    image = Image.new("RGB", (300, 200), "white")
    array = decode_image(encode(image, fmt), **LIMITS)
    assert array.shape == (200, 300, 3) and array.dtype == np.uint8


def test_grayscale_and_alpha_become_rgb():
    assert decode_image(encode(Image.new("L", (10, 10)), "PNG"), **LIMITS).shape == (10, 10, 3)
    assert decode_image(encode(Image.new("RGBA", (10, 10)), "PNG"), **LIMITS).shape == (10, 10, 3)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (200, 100), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    array = decode_image(encode(image, "JPEG", exif=exif), **LIMITS)
    assert array.shape[:2] == (200, 100)


def test_large_images_are_scaled_down():
    array = decode_image(encode(Image.new("RGB", (4000, 1000)), "PNG"), **LIMITS)
    assert array.shape[:2] == (500, 2000)


def test_too_many_bytes():
    assert error(b"\x89PNG" + b"0" * 3_000_000).status == 413


def png_header_only(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (1-bit: bit_depth 1)."""
    png = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


@pytest.mark.parametrize(
    ("width", "height", "bit_depth"),
    [
        (100_000, 100_000, 8),  # beyond Pillow's own bomb error threshold
        (12_000, 12_000, 8),  # beyond its warning threshold (a 140 KB grayscale PNG)
        (30_000, 30_000, 1),  # 1-bit
    ],
)
def test_decompression_bomb_is_413_naming_the_limit(width: int, height: int, bit_depth: int):
    err = error(png_header_only(width, height, bit_depth))
    assert (err.status, err.code) == (413, "image_too_large")
    assert f"{width * height} pixels" in err.message
    assert f"at most {LIMITS['max_pixels']} pixels" in err.message


def test_real_bomb_png_is_413():
    # A real 12000 x 12000 grayscale PNG: about 140 KB of zeros that would decode to 144 MB.
    data = encode(Image.new("L", (12_000, 12_000)), "PNG", optimize=True)
    assert len(data) < 1_000_000
    err = error(data)
    assert (err.status, err.code) == (413, "image_too_large")


def test_pixel_limit_from_the_header():
    assert error(encode(Image.new("L", (3000, 3000)), "PNG"), max_pixels=1_000_000).status == 413


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"not an image at all", 415),
        (b"%PDF-1.7\n...", 400),
    ],
)
def test_bad_data(data: bytes, status: int):
    assert error(data).status == status


def test_other_formats_are_415():
    assert error(encode(Image.new("RGB", (10, 10)), "GIF")).status == 415
    assert error(encode(Image.new("RGB", (10, 10)), "BMP")).status == 415


def test_truncated_jpeg_is_invalid_image():
    data = encode(Image.effect_noise((400, 400), 50).convert("RGB"), "JPEG")
    err = error(data[: len(data) // 2])
    assert (err.status, err.code) == (400, "invalid_image")


def pdf(*pages: Image.Image, dpi: float = 72) -> bytes:
    """A PDF whose pages measure (image size / dpi) inches."""
    return encode(pages[0], "PDF", save_all=True, append_images=list(pages[1:]), resolution=dpi)


def test_pdf_first_page_is_rendered():
    first = Image.new("RGB", (300, 600), "white")
    second = Image.new("RGB", (600, 300), "black")
    array = decode_image(pdf(first, second), **LIMITS)
    # 300x600 pt at 200 dpi, the first page (portrait, white), not the second.
    height, width = array.shape[:2]
    assert abs(height - 600 * 200 / 72) <= 1 and abs(width - 300 * 200 / 72) <= 1
    assert array.mean() > 250


def test_huge_pdf_pages_are_rendered_within_the_limits():
    page = Image.new("RGB", (200, 100), "white")
    bomb = pdf(page, dpi=0.1)  # 2000 x 1000 inches: billions of pixels at 200 dpi
    array = decode_image(bomb, **{**LIMITS, "max_pixels": 1_000_000})
    assert max(array.shape[:2]) <= LIMITS["max_side"]
    assert array.shape[0] * array.shape[1] <= 1_000_000
    assert array.shape[1] > array.shape[0]  # landscape, as drawn


@pytest.mark.parametrize("data", [b"%PDF-1.4\n" + b"garbage" * 100, b"%PDF-"])
def test_corrupt_pdf_is_invalid_image(data: bytes):
    err = error(data)
    assert (err.status, err.code) == (400, "invalid_image")
