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


def test_decompression_bomb_rejected_from_the_header():
    # A tiny PNG whose header claims 100000 x 100000 pixels.
    png = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = (
        png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]
    )
    err = error(patched)
    assert err.status in (413, 415)
    assert err.code in ("image_too_large", "unsupported_media_type")
    assert error(encode(Image.new("L", (3000, 3000)), "PNG"), max_pixels=1_000_000).status == 413


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"not an image at all", 415),
        (b"%PDF-1.7\n...", 415),
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
