"""Turns an uploaded image into a deployment call and the documented OCR response."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from serve_app.errors import ApiError, overloaded, refuse_long, retry_later
from serve_app.metrics import BATCH_ITEMS
from serve_app.ocr.images import ACCEPTED_CONTENT_TYPES, decode_image
from serve_app.ocr.jobs import PageJob, PageResult
from serve_app.ocr.protocol import MAX_LINE_CHARS
from serve_app.ocr.receipts import ReceiptParser
from serve_app.responses import FastJSONResponse
from serve_app.settings import Settings

if TYPE_CHECKING:  # the ingress side: importable without Ray
    from serve_app.deployment_client import DeploymentClient


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


PARSER = ReceiptParser()  # no state: one for the OCR route and /v1/receipts/parse


async def parse_lines(lines: list[str]) -> dict[str, Any]:
    """``POST /v1/receipts/parse``: the receipt in lines from another reader; a line over
    :data:`MAX_LINE_CHARS` is 413 ``line_too_long``."""
    refuse_long(lines, MAX_LINE_CHARS, "line_too_long", "lines")
    # Regex work on up to 2000 lines: off the event loop so other requests keep flowing.
    return asdict(await asyncio.to_thread(PARSER.parse, lines))


class PageAdmission:
    """Admits an OCR page only when it can be read before its request times out, from the
    pages in flight and what answers tell of the replicas (docs/operations.md#ocr-admission);
    before the first answer every page is admitted."""

    REPLICA_TTL_S = 60.0  # a replica not heard from for this long no longer counts

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.pending = 0  # pages sent to the model, not yet answered
        self.page_s: float | None = None  # seconds a page takes on the model (moving average)
        self._replicas: dict[str, tuple[int, float]] = {}  # id -> (pages at once, last seen)

    def slots(self) -> int:
        """Pages the replicas heard from recently read at once, together."""
        now = time.monotonic()
        return sum(n for n, seen in self._replicas.values() if now - seen < self.REPLICA_TTL_S)

    def estimate_s(self) -> float | None:
        """When a page sent now would be answered, or None before anything was measured."""
        slots = self.slots()
        if self.page_s is None or not slots:
            return None
        return math.ceil((self.pending + 1) / slots) * self.page_s

    def admit(self, retry_after_s: int) -> None:
        """Raise 503 ``overloaded`` when a new page would not be read within ``limit_s``."""
        estimate = self.estimate_s()
        if estimate is not None and estimate > self.limit_s:
            assert self.page_s is not None
            # until enough pages ahead have been answered for this one to fit
            wait = estimate - self.limit_s + self.page_s
            raise overloaded("OCR", max(retry_after_s, math.ceil(wait)))
        self.pending += 1

    def done(self, result: PageResult | None) -> None:
        """An admitted page was answered (``result``) or failed (None)."""
        self.pending -= 1
        if result is None or result.page is None or not result.page_seconds:
            return
        seconds = result.page_seconds
        self.page_s = seconds if self.page_s is None else 0.7 * self.page_s + 0.3 * seconds
        self._replicas[result.replica] = (result.pages_at_once, time.monotonic())


class OcrService:
    """Image intake, admission, the OCR deployment call, and receipt parsing of the lines."""

    ADMIT_SHARE = 0.8  # of the request timeout: room for decoding, parsing and the estimate's error

    def __init__(self, client: DeploymentClient, settings: Settings):
        self.client = client
        self.settings = settings
        self.admission = PageAdmission(self.ADMIT_SHARE * client.timeout_s)

    async def run(self, data: bytes, receipt: bool) -> FastJSONResponse:
        s = self.settings
        # Refused before any work when the model cannot read it in time: no decoding either.
        self.admission.admit(s.retry_after_s)
        result: PageResult | None = None
        try:
            # Decoding is CPU work: off the event loop.
            image = await asyncio.to_thread(
                decode_image, data, s.ocr_max_image_bytes, s.ocr_max_pixels, s.ocr_max_side
            )
            job = PageJob(image, time.time() + self.client.timeout_s)
            result = await self.client.call("read", job)
        finally:
            self.admission.done(result)
        if result.unavailable is not None:
            raise retry_later(
                "ocr_unavailable",
                f"OCR is unavailable: {result.unavailable} Fix: `{result.fix}`.",
                60,
            )
        if result.expired or result.page is None:  # only when the clocks disagree
            raise ApiError(
                408,
                "timeout",
                f"The OCR model did not read the page within {self.client.timeout_s:g} s.",
            )
        if result.batch_leader:
            BATCH_ITEMS.labels("ocr").observe(result.batch_size)
        ocr_page = result.page
        lines = [asdict(line) for line in ocr_page.lines]
        texts = [line["text"] for line in lines]
        parsed = asdict(await asyncio.to_thread(PARSER.parse, texts)) if receipt else None
        return FastJSONResponse(
            {
                "text": "\n".join(texts),
                "pages": [{"width": ocr_page.width, "height": ocr_page.height, "lines": lines}],
                "receipt": parsed,
                "model": result.model,
            }
        )
