"""Segments -> printed lines (serve_app/ocr/lines.py) on boxes laid out as engines give them."""

from __future__ import annotations

import math

import pytest

from serve_app.ocr.lines import group_lines, skew_angle
from serve_app.ocr.pages import OcrSegment


def segment(text: str, x: float, y: float, w: float, h: float, degrees: float = 0.0) -> OcrSegment:
    """A box of ``w`` x ``h`` pixels with its top-left corner at (x, y), turned by ``degrees``
    about the page's origin (as a rotated photo turns every box)."""
    a = math.radians(degrees)

    def turn(px: float, py: float) -> tuple[float, float]:
        return px * math.cos(a) - py * math.sin(a), px * math.sin(a) + py * math.cos(a)

    corners = (turn(x, y), turn(x + w, y), turn(x + w, y + h), turn(x, y + h))
    return OcrSegment(text=text, confidence=0.9, corners=corners)


RECEIPT = [  # (left text, right text, line top): name at the margin, price far right
    ("BANANAS", "1.29", 100),
    ("OAT MILK 1L", "2.49 A", 140),
    ("SUBTOTAL", "3.78", 180),
    ("TOTAL", "3.78", 220),
]


def receipt_segments(degrees: float = 0.0) -> list[OcrSegment]:
    found = []
    for left, right, top in RECEIPT:
        found.append(segment(left, 40, top, 14 * len(left), 24, degrees))
        found.append(segment(right, 560 - 14 * len(right), top, 14 * len(right), 24, degrees))
    return found


def texts(segments: list[OcrSegment]) -> list[str]:
    return [line.text for line in group_lines(segments, 600, 400)]


def test_a_price_far_right_joins_its_name():
    assert texts(receipt_segments()) == [f"{left} {right}" for left, right, _ in RECEIPT]


@pytest.mark.parametrize("degrees", [-3.0, -1.5, 1.5, 3.0])
def test_a_slightly_rotated_page(degrees: float):
    """At 3 degrees the price sits 27 px off its name's height, more than a text height."""
    segments = receipt_segments(degrees)
    assert math.degrees(skew_angle(segments)) == pytest.approx(degrees, abs=0.01)
    assert texts(segments) == [f"{left} {right}" for left, right, _ in RECEIPT]


def test_uneven_heights_and_close_lines():
    segments = [
        segment("FRESH MART", 150, 20, 300, 48),  # the title, twice the items' height
        segment("#042", 470, 32, 60, 24),  # same line, smaller print
        segment("EGGS 12PK", 40, 90, 126, 24),
        segment("5.49", 504, 92, 56, 22),
        segment("COUPON", 40, 118, 84, 24),  # the next line, 28 px below
        segment("-1.00", 490, 118, 70, 24),
    ]
    assert texts(segments) == ["FRESH MART #042", "EGGS 12PK 5.49", "COUPON -1.00"]


def test_segments_are_read_left_to_right_and_boxes_cover_them():
    segments = [segment("4.56", 500, 50, 56, 24), segment("TOTAL", 40, 50, 70, 24)]
    (line,) = group_lines(segments, 600, 200)
    assert line.text == "TOTAL 4.56"
    assert line.box == pytest.approx((40 / 600, 50 / 200, 556 / 600, 74 / 200))


def test_nothing_read():
    assert group_lines([], 100, 100) == []
    assert group_lines([segment("  ", 0, 0, 10, 10)], 100, 100) == []


def test_a_line_holds_one_price_per_column():
    """Tall boxes on close lines (a photo's text height above its line pitch): the middle
    price is nearer line A's height than line B's, but A already holds a price in that
    column, so it is B's, and the last one C's."""
    segments = [
        segment("LINE A", 40, 100, 84, 36),
        segment("LINE B", 40, 128, 84, 36),
        segment("LINE C", 40, 156, 84, 36),
        segment("1.11", 500, 92, 56, 36),  # 8 px from A
        segment("2.22", 500, 111, 56, 36),  # 11 px from A, 17 from B
        segment("3.33", 500, 139, 56, 36),  # 11 px from B, 17 from C
    ]
    assert texts(segments) == ["LINE A 1.11", "LINE B 2.22", "LINE C 3.33"]


def test_boxes_that_overlap_a_little_are_still_one_line():
    segments = [segment("3 @5.48", 268, 100, 120, 31), segment("EA", 375, 102, 34, 24)]
    assert texts(segments) == ["3 @5.48 EA"]


def test_an_indented_line_on_a_turned_page_keeps_its_place():
    """Turned 5 degrees, an indented weight line's first segment sits higher on the image
    than the name above it; lines are ordered where they meet the text's left edge."""
    segments = [
        segment("GROUND BEEF", 40, 100, 154, 24, -5.0),
        segment("0.609 lb @ 4.99/lb", 440, 128, 252, 24, -5.0),
        segment("3.04", 740, 128, 56, 24, -5.0),
        segment("MILK", 40, 156, 56, 24, -5.0),
        segment("1.25", 740, 156, 56, 24, -5.0),
    ]
    weight_line = segments[1].corners
    assert sum(y for _, y in weight_line) < sum(y for _, y in segments[0].corners)
    lines = [line.text for line in group_lines(segments, 900, 400)]
    assert lines == ["GROUND BEEF", "0.609 lb @ 4.99/lb 3.04", "MILK 1.25"]
