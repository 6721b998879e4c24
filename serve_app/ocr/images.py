"""Safe image intake: size and pixel limits before decoding, EXIF orientation, downscaling."""

from __future__ import annotations

import io
import math
import re
import struct
import threading
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serve_app.errors import ApiError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
PDF_CONTENT_TYPE = "application/pdf"
ACCEPTED_CONTENT_TYPES = set(ACCEPTED_FORMATS.values()) | {"image/jpg", PDF_CONTENT_TYPE}
PDF_DPI = 200  # scanned receipts: enough for small print, well under the pixel limit
# PDFium is not thread-safe; images are decoded in worker threads.
_PDFIUM_LOCK = threading.Lock()
# What Pillow's decoders raise on bad bytes (truncated streams, bad chunks, bad headers).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)


def decode_image(data: bytes, max_bytes: int, max_pixels: int, max_side: int) -> np.ndarray:
    """Bytes of a JPEG/PNG/WebP or PDF -> RGB uint8 array (H, W, 3), upright, longest side <=
    max_side. ApiError 413 for too many bytes or pixels (from the header, before decoding), 415
    for other formats, 400 ``invalid_image`` for corrupt data."""
    if len(data) > max_bytes:
        raise ApiError(
            413, "image_too_large", f"The image has {len(data)} bytes; at most {max_bytes}."
        )
    if not data:
        raise ApiError(400, "invalid_image", "The image is empty.")
    if data[:5] == b"%PDF-":
        return render_pdf_first_page(data, max_pixels, max_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # more pixels than Pillow's bomb threshold: a real image, only too large (so 413)
        raise ApiError(
            413,
            "image_too_large",
            f"The image declares too many pixels ({_bomb_pixels(exc)}); "
            f"at most {max_pixels} pixels.",
        ) from None
    except UnidentifiedImageError:
        raise ApiError(
            415, "unsupported_media_type", "Not a JPEG, PNG, WebP image or a PDF."
        ) from None
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


def _bomb_pixels(exc: Exception) -> str:
    """The pixel count in Pillow's decompression-bomb message ("Image size (N pixels) ...")."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{match.group(1)} pixels" if match else "beyond Pillow's decompression-bomb limit"


def render_pdf_first_page(data: bytes, max_pixels: int, max_side: int) -> np.ndarray:
    """The first page of a PDF at PDF_DPI, scaled down to fit the limits before rendering."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise ApiError(400, "invalid_image", f"The PDF could not be read: {exc}") from None
        try:
            if len(pdf) == 0:
                raise ApiError(400, "invalid_image", "The PDF has no pages.")
            page = pdf[0]
            width_pt, height_pt = page.get_size()
            if width_pt <= 0 or height_pt <= 0:
                raise ApiError(400, "invalid_image", "The PDF's first page has no area.")
            # Never render more than the limits allow: shrink the scale instead of refusing.
            scale = min(
                PDF_DPI / 72,
                max_side / max(width_pt, height_pt),
                (max_pixels / (width_pt * height_pt)) ** 0.5,
            )
            # PDFium rounds the bitmap up to whole pixels; stay inside the limits after that.
            while (
                math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_pixels
                or math.ceil(max(width_pt, height_pt) * scale) > max_side
            ):
                scale *= 0.995
            try:
                image = page.render(scale=scale).to_pil()
            except pdfium.PdfiumError as exc:
                raise ApiError(
                    400, "invalid_image", f"The PDF page could not be rendered: {exc}"
                ) from None
        finally:
            pdf.close()
    return np.asarray(image.convert("RGB"))
