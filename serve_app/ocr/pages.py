"""What an OCR engine reads off a page (no Ray, no model library): text segments with their
boxes, grouped into printed lines, and the interface both engines (docTR, rapidocr) share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class OcrSegment:
    """A run of text the engine read as one piece (a word for docTR, a phrase for rapidocr),
    with its four corners in page pixels: top-left, top-right, bottom-right, bottom-left."""

    text: str
    confidence: float
    corners: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1, relative to the page (0..1)


@dataclass(frozen=True)
class OcrPage:
    width: int
    height: int
    lines: list[OcrLine]


class OcrRuntime(Protocol):
    """An OCR engine, built once per replica: ``read`` pages (RGB uint8 arrays (H, W, 3))."""

    engine: str  # "doctr" or "rapidocr"
    det_arch: str
    reco_arch: str
    weights: Literal["pretrained", "random"]
    device: str
    load_seconds: float

    def read(self, pages: list[np.ndarray]) -> list[OcrPage]: ...
