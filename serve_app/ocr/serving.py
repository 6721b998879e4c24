"""Turns an uploaded image into a deployment call and the documented OCR response."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from serve_app.errors import ApiError
from serve_app.metrics import BATCH_ITEMS
from serve_app.models import ModelClient
from serve_app.ocr.images import ACCEPTED_CONTENT_TYPES, decode_image
from serve_app.ocr.receipts import ReceiptParser
from serve_app.ocr.runtime import DOWNLOAD_HINT
from serve_app.responses import FastJSONResponse
from serve_app.settings import Settings


async def read_upload(request: Request) -> bytes:
    """The image bytes: multipart field ``file``, or the raw body with an image content type."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10)
        except ValueError as exc:  # python-multipart's FormParserError is a ValueError
            raise ApiError(
                400, "bad_request", f"The multipart body could not be parsed: {exc}"
            ) from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "validation_error", "file: a multipart field 'file' is required.")
        data = await upload.read()
        await form.close()
        return data
    if content_type in ACCEPTED_CONTENT_TYPES:
        return await request.body()
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Send the image as multipart field 'file' or as a JPEG/PNG/WebP/PDF body, not "
        f"{content_type or 'no content type'}.",
    )


class OcrService:
    """Image intake, the OCR deployment call, and receipt parsing of the lines."""

    def __init__(self, client: ModelClient, settings: Settings):
        self.client = client
        self.settings = settings
        self.parser = ReceiptParser()

    async def run(self, data: bytes, receipt: bool) -> FastJSONResponse:
        s = self.settings
        # Decoding is CPU work: off the event loop.
        page = await asyncio.to_thread(
            decode_image, data, s.ocr_max_image_bytes, s.ocr_max_pixels, s.ocr_max_side
        )
        result: dict[str, Any] = await self.client.call("read", page)
        if "unavailable" in result:
            raise ApiError(
                503,
                "ocr_unavailable",
                f"OCR is unavailable: {result['unavailable']} Fix: `{DOWNLOAD_HINT}`.",
                {"Retry-After": "60"},
            )
        if result["batch_leader"]:
            BATCH_ITEMS.labels("ocr").observe(result["batch_size"])
        ocr_page = result["page"]
        lines = [asdict(line) for line in ocr_page.lines]
        texts = [line["text"] for line in lines]
        parsed = (await asyncio.to_thread(self.parser.parse, texts)).to_dict() if receipt else None
        return FastJSONResponse(
            {
                "text": "\n".join(texts),
                "pages": [{"width": ocr_page.width, "height": ocr_page.height, "lines": lines}],
                "receipt": parsed,
                "model": result["model"],
            }
        )
