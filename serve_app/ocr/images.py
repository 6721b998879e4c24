"""Safe image intake: size and pixel limits before decoding, EXIF orientation, downscaling."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serve_app.errors import ApiError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
ACCEPTED_CONTENT_TYPES = set(ACCEPTED_FORMATS.values()) | {"image/jpg"}
# What Pillow's decoders raise on bad bytes (truncated streams, bad chunks, bad headers).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)


def decode_image(data: bytes, max_bytes: int, max_pixels: int, max_side: int) -> np.ndarray:
    """Bytes of a JPEG/PNG/WebP -> RGB uint8 array (H, W, 3), upright, longest side <= max_side.

    Raises ApiError: 413 for too many bytes or pixels (checked from the header, before the
    pixels are decoded), 415 for other formats, 400 ``invalid_image`` for corrupt data.
    """
    if len(data) > max_bytes:
        raise ApiError(
            413, "image_too_large", f"The image has {len(data)} bytes; at most {max_bytes}."
        )
    if not data:
        raise ApiError(400, "invalid_image", "The image is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(415, "unsupported_media_type", "Not a JPEG, PNG or WebP image.") from None
    except _DECODE_ERRORS as exc:
        raise ApiError(400, "invalid_image", f"The image could not be read: {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{image.format or 'This'} images are not accepted; send JPEG, PNG or WebP.",
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"The image is {width}x{height} pixels; at most {max_pixels} pixels.",
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGB")
    except _DECODE_ERRORS as exc:
        raise ApiError(
            400, "invalid_image", f"The image data is corrupt or truncated: {exc}"
        ) from None
    longest = max(image.size)
    if longest > max_side:
        scale = max_side / longest
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return np.asarray(image)
