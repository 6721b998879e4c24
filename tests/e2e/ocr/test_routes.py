"""POST /v1/receipts/parse through the real Serve app."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


def post(server, body) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/receipts/parse", json=body, headers=server.headers, timeout=30
    )


def test_parse_lines(serve_server):
    lines = ["FRESH MART", "MILK 3.49", "BANANAS", "3 @ 0.29 0.87", "TAX 0.20", "TOTAL 4.56"]
    response = post(serve_server, {"lines": lines})
    assert response.status_code == 200, response.text
    receipt = response.json()["receipt"]
    assert receipt["merchant"] == "FRESH MART"
    assert [i["name"] for i in receipt["items"]] == ["MILK", "BANANAS"]
    assert receipt["items"][1]["quantity"] == 3
    assert receipt["items"][1]["unit_price"] == 0.29
    assert receipt["total"] == 4.56
    assert receipt["consistent"] is True


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "validation_error"),
        ({"lines": "MILK 3.49"}, 422, "validation_error"),
        ({"lines": [1, 2]}, 422, "validation_error"),
        ({"lines": ["x"] * 2001}, 422, "validation_error"),
        ({"lines": ["A" * 1001]}, 413, "line_too_long"),
        ({"lines": [], "extra": True}, 422, "validation_error"),
    ],
)
def test_bad_bodies(serve_server, body, status, code):
    response = post(serve_server, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_empty_receipt_is_not_an_error(serve_server):
    response = post(serve_server, {"lines": []})
    assert response.status_code == 200
    assert response.json()["receipt"]["items"] == []
    assert response.json()["receipt"]["consistent"] is False
