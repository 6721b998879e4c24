"""HTTP routes for receipts (no logic here)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from serve_app.errors import ApiError
from serve_app.ocr.protocol import (
    MAX_LINE_CHARS,
    OcrResponse,
    ReceiptParseRequest,
    ReceiptParseResponse,
)
from serve_app.ocr.receipts import ReceiptParser
from serve_app.ocr.serving import read_upload
from serve_app.responses import FastJSONResponse

router = APIRouter(tags=["receipts"])
ocr_router = APIRouter(tags=["ocr"])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            **{
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/jpeg", "image/png", "image/webp")
            },
        },
    }
}


@ocr_router.post("/v1/ocr", response_model=OcrResponse, openapi_extra=_UPLOAD_BODY)
async def ocr(
    request: Request,
    receipt: bool = Query(True, description="also parse the lines as a receipt"),
) -> FastJSONResponse:
    """Receipt photo or scan (JPEG, PNG, WebP) -> lines with boxes, text, and the receipt."""
    data = await read_upload(request)
    return await request.app.state.ocr.run(data, receipt)


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
