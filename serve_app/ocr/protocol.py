"""HTTP schemas of ``POST /v1/ocr`` and ``POST /v1/receipts/parse``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

MAX_LINES = 2000
MAX_LINE_CHARS = 1000


class ReceiptItemOut(BaseModel):
    name: str
    quantity: float
    unit_price: float | None = None
    unit: str | None = Field(None, description="kg, g, lb, ... for weighed items")
    total: float = Field(..., description="negative for discounts and coupons")
    kind: Literal["item", "discount", "deposit"] = "item"


class ReceiptOut(BaseModel):
    merchant: str | None = None
    date: str | None = Field(None, description="ISO 8601 date")
    currency: str | None = Field(None, description="ISO 4217 code when the receipt shows one")
    items: list[ReceiptItemOut]
    subtotal: float | None = None
    tax: float | None = None
    total: float | None = None
    consistent: bool = Field(..., description="item totals add up to the printed total")


class OcrLineOut(BaseModel):
    text: str
    confidence: float
    box: list[float] = Field(..., description="x0, y0, x1, y1 relative to the page (0..1)")


class OcrPageOut(BaseModel):
    width: int
    height: int
    lines: list[OcrLineOut]


class OcrModelOut(BaseModel):
    engine: Literal["doctr", "rapidocr"] = Field(..., description="the engine that read it")
    detection: str
    recognition: str
    weights: Literal["pretrained", "random"]


class OcrResponse(BaseModel):
    text: str
    pages: list[OcrPageOut]
    receipt: ReceiptOut | None
    model: OcrModelOut


class ReceiptParseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[StrictStr] = Field(
        ...,
        max_length=MAX_LINES,
        description=f"Receipt text, one line per entry (at most {MAX_LINES}).",
    )


class ReceiptParseResponse(BaseModel):
    receipt: ReceiptOut
