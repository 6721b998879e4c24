"""Pages for the OCR tests: receipts drawn with PIL from known lines (no files, no network)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RECEIPT_LINES = [
    "FRESH MART",
    "11/27/2026",
    "MILK 2% 1 GAL      3.49",
    "BANANAS 3 @ 0.29   0.87",
    "SUBTOTAL           4.36",
    "TAX                0.20",
    "TOTAL              4.56",
]


def render_receipt(width: int = 600, line_height: int = 60) -> np.ndarray:
    """A receipt-like page drawn with PIL's own scalable font."""
    height = line_height * (len(RECEIPT_LINES) + 2)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=32)
    for i, line in enumerate(RECEIPT_LINES):
        draw.text((30, line_height * (i + 1)), line, fill="black", font=font)
    return np.asarray(image)
