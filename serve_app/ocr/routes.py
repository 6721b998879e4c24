"""HTTP routes for receipts (no logic here)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from serve_app.errors import ApiError
from serve_app.ocr.protocol import MAX_LINE_CHARS, ReceiptParseRequest, ReceiptParseResponse
from serve_app.ocr.receipts import ReceiptParser

router = APIRouter(tags=["receipts"])
_PARSER = ReceiptParser()


@router.post("/v1/receipts/parse", response_model=ReceiptParseResponse)
async def parse_receipt(body: ReceiptParseRequest) -> ReceiptParseResponse:
    """Receipt lines from another reader (phone OCR, e-receipt) -> items and totals."""
    for i, line in enumerate(body.lines):
        if len(line) > MAX_LINE_CHARS:
            raise ApiError(
                413,
                "line_too_long",
                f"lines[{i}] has {len(line)} characters; at most {MAX_LINE_CHARS}.",
            )
    # Regex work on up to 2000 lines: off the event loop so other requests keep flowing.
    receipt = await asyncio.to_thread(_PARSER.parse, body.lines)
    return ReceiptParseResponse.model_validate({"receipt": receipt.to_dict()})
