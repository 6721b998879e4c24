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


def test_parse_a_german_receipt_with_a_weighed_item_and_a_card_slip(serve_server):
    """The same parser as /v1/ocr: a weight line under its item gives quantity, unit price
    and unit; the total is "zu zahlen"; the payment block and the VAT table are not items."""
    lines = [
        "MARKTKAUF WEBER",
        "TOMATEN RISPEN 2,05 B",
        "0,687 kg x 2,99 EUR/kg",
        "2 x 0,89",
        "APFELSCHORLE 1L 1,78 A",
        "PFAND 0,50 A",
        "zu zahlen 4,33",
        "Geg. Kreditkarte EUR 4,33",
        "Steuer % Netto Steuer Brutto",
        "A= 19,0% 1,92 0,36 2,28",
        "B= 7,0% 1,92 0,13 2,05",
        "Summe 3,84 0,49 4,33",
        "Kundenbeleg",
        "Betrag EUR 4,33",
    ]
    response = post(serve_server, {"lines": lines})
    assert response.status_code == 200, response.text
    receipt = response.json()["receipt"]
    assert [
        (i["name"], i["quantity"], i["unit_price"], i["unit"], i["total"], i["kind"])
        for i in receipt["items"]
    ] == [
        ("TOMATEN RISPEN", 0.687, 2.99, "kg", 2.05, "item"),
        ("APFELSCHORLE 1L", 2, 0.89, None, 1.78, "item"),
        ("PFAND", 1, None, None, 0.50, "deposit"),
    ]
    assert (receipt["total"], receipt["tax"], receipt["currency"]) == (4.33, 0.49, "EUR")
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


def test_openapi_lists_every_accepted_upload(serve_server):
    spec = httpx.get(f"{serve_server.url}/openapi.json").json()
    content = spec["paths"]["/v1/ocr"]["post"]["requestBody"]["content"]
    assert set(content) == {
        "multipart/form-data",
        "image/jpeg",
        "image/png",
        "image/webp",
        "application/pdf",
    }
