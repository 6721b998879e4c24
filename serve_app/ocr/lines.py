"""Segments -> printed lines, the same for both engines (no Ray, no model library).

A receipt's line is often read as several segments: the name at the left margin, the price
far right, a tax code beside it. Photos are slightly rotated, so the price of a line can sit
higher than its name by more than a text height; titles are taller than items. Grouping:

1. the page's skew is the median angle of the segments' top edges (long segments first: their
   angle is the most reliable), at most 10 degrees;
2. segment centres are turned back by that angle;
3. in order of height on the page, a segment joins the nearest recent line whose centre is
   within half the smaller text height of its own, else it starts a line;
4. a line's segments are read left to right, joined by one space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from serve_app.ocr.pages import OcrLine, OcrSegment

MAX_SKEW_DEGREES = 10.0
RECENT_LINES = 4  # a segment is compared with the last few lines only (reading order)


@dataclass
class _Placed:
    segment: OcrSegment
    u: float  # along the line, after deskewing
    v: float  # across the lines, after deskewing
    height: float


@dataclass
class _Line:
    members: list[_Placed] = field(default_factory=list)

    @property
    def v(self) -> float:
        return sum(m.v for m in self.members) / len(self.members)

    @property
    def height(self) -> float:
        return float(np.median([m.height for m in self.members]))


def skew_angle(segments: Sequence[OcrSegment]) -> float:
    """The page's rotation in radians, from the segments' top edges."""
    angles, weights = [], []
    for segment in segments:
        (x0, y0), (x1, y1) = segment.corners[0], segment.corners[1]
        length = math.hypot(x1 - x0, y1 - y0)
        if length > 0:
            angles.append(math.atan2(y1 - y0, x1 - x0))
            weights.append(length)
    if not angles:
        return 0.0
    order = np.argsort(angles)
    cumulative = np.cumsum(np.asarray(weights)[order])
    median = float(np.asarray(angles)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    limit = math.radians(MAX_SKEW_DEGREES)
    return max(-limit, min(limit, median))


def group_lines(segments: Sequence[OcrSegment], width: int, height: int) -> list[OcrLine]:
    """The printed lines of a page, top to bottom, from its segments (corners in pixels)."""
    segments = [s for s in segments if s.text.strip()]
    if not segments:
        return []
    angle = skew_angle(segments)
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for segment in segments:
        corners = np.asarray(segment.corners, dtype=float)
        cx, cy = corners.mean(axis=0)
        left = np.hypot(*(corners[3] - corners[0]))
        right = np.hypot(*(corners[2] - corners[1]))
        placed.append(
            _Placed(
                segment,
                u=cx * cos + cy * sin,
                v=-cx * sin + cy * cos,
                height=max(1.0, float(left + right) / 2),
            )
        )
    placed.sort(key=lambda p: p.v)
    lines: list[_Line] = []
    for item in placed:
        best, best_gap = None, math.inf
        for line in lines[-RECENT_LINES:]:
            gap = abs(item.v - line.v)
            if gap < 0.5 * min(item.height, line.height) and gap < best_gap:
                best, best_gap = line, gap
        if best is None:
            best = _Line()
            lines.append(best)
        best.members.append(item)
    lines.sort(key=lambda line: line.v)
    return [_as_line(line, width, height) for line in lines]


def _as_line(line: _Line, width: int, height: int) -> OcrLine:
    members = sorted(line.members, key=lambda m: m.u)
    text = " ".join(m.segment.text.strip() for m in members)
    weights = [max(1, len(m.segment.text)) for m in members]
    confidence = sum(w * m.segment.confidence for w, m in zip(weights, members, strict=True))
    corners = np.asarray([c for m in members for c in m.segment.corners], dtype=float)
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)

    def rel(value: float, size: int) -> float:
        return float(min(max(value / max(size, 1), 0.0), 1.0))

    return OcrLine(
        text=text,
        confidence=round(confidence / sum(weights), 4),
        box=(rel(x0, width), rel(y0, height), rel(x1, width), rel(y1, height)),
    )
