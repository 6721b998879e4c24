"""HTTP routes for receipts (no logic here)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from serve_app.ocr.images import ACCEPTED_FORMATS, PDF_CONTENT_TYPE
from serve_app.ocr.protocol import OcrResponse, ReceiptParseRequest, ReceiptParseResponse
from serve_app.ocr.serving import parse_lines, read_upload
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
                for t in (*sorted(ACCEPTED_FORMATS.values()), PDF_CONTENT_TYPE)
            },
        },
    }
}


@ocr_router.post("/v1/ocr", response_model=OcrResponse, openapi_extra=_UPLOAD_BODY)
async def ocr(
    request: Request,
    receipt: bool = Query(True, description="also parse the lines as a receipt"),
) -> FastJSONResponse:
    """Receipt photo or scan (JPEG, PNG, WebP, or a PDF's first page) -> lines with boxes,
    text, and the receipt."""
    data = await read_upload(request)
    return await request.app.state.ocr.run(data, receipt)


@router.post("/v1/receipts/parse", response_model=ReceiptParseResponse)
async def parse_receipt(body: ReceiptParseRequest) -> ReceiptParseResponse:
    """Receipt lines from another reader (phone OCR, e-receipt) -> items and totals."""
    return ReceiptParseResponse.model_validate({"receipt": await parse_lines(body.lines)})
