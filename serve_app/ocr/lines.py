"""Segments -> printed lines, the same for both engines (no Ray, no model library).

The slope is measured where each segment lies, since keystone and curl turn a photo by
different angles in different places; the grouping is described in docs/models.md (Lines).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serve_app.ocr.pages import OcrLine, OcrSegment

MAX_SKEW_DEGREES = 10.0
SLOPE_WINDOW = 4.0  # text heights above and below whose long segments give the local slope


def skew_angle(segments: Sequence[OcrSegment]) -> float:
    """The page's rotation in radians, from the segments' top edges."""
    measured = [m for m in map(_measure, segments) if m.length > 0]
    return _median_angle(measured) if measured else 0.0


@dataclass
class _Segment:
    segment: OcrSegment
    cx: float
    cy: float
    left: float
    height: float
    length: float
    angle: float


def _measure(segment: OcrSegment) -> _Segment:
    corners = np.asarray(segment.corners, dtype=float)
    cx, cy = corners.mean(axis=0)
    (x0, y0), (x1, y1) = corners[0], corners[1]
    left = np.hypot(*(corners[3] - corners[0]))
    right = np.hypot(*(corners[2] - corners[1]))
    return _Segment(
        segment,
        cx=float(cx),
        cy=float(cy),
        left=float(corners[:, 0].min()),
        height=max(1.0, float(left + right) / 2),
        length=float(math.hypot(x1 - x0, y1 - y0)),
        angle=math.atan2(y1 - y0, x1 - x0),
    )


def _local_slope(
    at: _Segment, near: list[_Segment], window: tuple[float, float], default: float
) -> float:
    """The print's slope (tan of its angle) at ``at``: the length-weighted median angle of
    the segments within ``window`` (across, along) of it; ``default`` where none is."""
    found = [s for s in near if abs(s.cy - at.cy) <= window[0] and abs(s.cx - at.cx) <= window[1]]
    return math.tan(_median_angle(found)) if found else default


def _median_angle(segments: Sequence[_Segment]) -> float:
    """The length-weighted median of the segments' angles, within ``MAX_SKEW_DEGREES``."""
    ordered = sorted(segments, key=lambda s: s.angle)
    cumulative = np.cumsum([s.length for s in ordered])
    angle = ordered[int(np.searchsorted(cumulative, cumulative[-1] / 2))].angle
    limit = math.radians(MAX_SKEW_DEGREES)
    return max(-limit, min(limit, angle))


def group_lines(segments: Sequence[OcrSegment], width: int, height: int) -> list[OcrLine]:
    """The printed lines of a page, top to bottom, from its segments (corners in pixels)."""
    measured = [_measure(s) for s in segments if s.text.strip()]
    if not measured:
        return []
    default = math.tan(skew_angle([m.segment for m in measured]))
    text_height = float(np.median([m.height for m in measured]))
    left_edge = min(m.left for m in measured)
    right_edge = max(m.cx + m.length / 2 for m in measured)
    window = (SLOPE_WINDOW * text_height, 0.25 * (right_edge - left_edge))

    lines: list[list[_Segment]] = []
    slopes: list[float] = []
    for item in sorted(measured, key=lambda m: m.left):  # each line starts with its leftmost
        item_slope = _local_slope(item, measured, window, default)
        best, best_gap = None, math.inf
        for index, line in enumerate(lines):
            first = line[0]
            # the slope changes between item and line (curl): the mean of the two
            drop = (item.cx - first.cx) * (slopes[index] + item_slope) / 2
            gap = abs(item.cy - first.cy - drop)
            # a price overlapping one already on the line belongs to a neighbouring line
            if (
                gap < 0.5 * min(item.height, first.height)
                and gap < best_gap
                and not any(_same_column(item, m) for m in line)
            ):
                best, best_gap = index, gap
        if best is None:
            lines.append([item])
            slopes.append(item_slope)
        else:
            lines[best].append(item)

    # reading order by where a line crosses the left edge: keeps indented lines on turned pages
    def start(index: int) -> float:
        first = lines[index][0]
        return first.cy - (first.cx - left_edge) * slopes[index]

    return [_as_line(lines[i], width, height) for i in sorted(range(len(lines)), key=start)]


def _same_column(a: _Segment, b: _Segment) -> bool:
    """Whether two segments share most of their width (boxes of neighbours overlap a bit)."""
    overlap = min(a.cx + a.length / 2, b.cx + b.length / 2) - max(
        a.cx - a.length / 2, b.cx - b.length / 2
    )
    return overlap > 0.5 * min(a.length, b.length)


def _as_line(line: list[_Segment], width: int, height: int) -> OcrLine:
    members = sorted(line, key=lambda m: m.cx)
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
