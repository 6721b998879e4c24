"""The second receipt suite (benchmarks/data/receipt_photos.py) and the benchmark's scoring:
the suite is seeded and balanced, every truth receipt adds up as it is printed, the images are
phone-sized JPEGs, and the scores count what they say on a hand-made example."""

from __future__ import annotations

import io
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from PIL import Image

from benchmarks.data import receipt_data
from benchmarks.data.receipt_photos import (
    COUNTRIES,
    HELD_OUT_SEEDS,
    SEEDS,
    TruthPhotoItem,
    TruthPhotoReceipt,
    receipt_photo,
    receipt_truth,
    suite_seeds,
)
from benchmarks.receipts import match_items, score, score_receipt

CENT = Decimal("0.01")
ALL_TRUTHS = [receipt_truth(seed) for seed in [*SEEDS, *HELD_OUT_SEEDS]]
LEERGUT = {"leergut", "leergut einweg", "pfandbon"}  # bottle returns: negative deposits


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def test_the_same_seed_gives_the_same_truth_and_the_same_bytes():
    for seed in (1, 8):  # a German photo, a US scan
        first, again = receipt_photo(seed), receipt_photo(seed)
        assert first[0] == again[0]
        assert first[1] == again[1]
    assert receipt_photo(5)[1] != receipt_photo(9)[1]


def test_each_suite_has_80_receipts_20_per_country_with_photos_and_scans():
    assert not set(SEEDS) & set(HELD_OUT_SEEDS)
    for seeds in (SEEDS, HELD_OUT_SEEDS, suite_seeds(12_345)):
        truths = [receipt_truth(seed) for seed in seeds]
        assert len(truths) >= 80
        countries = Counter(t.country for t in truths)
        assert set(countries) == set(COUNTRIES)
        assert min(countries.values()) >= 20
        kinds = Counter((t.country, t.kind) for t in truths)
        for country in COUNTRIES:
            assert kinds[country, "scan"] >= 1
            assert kinds[country, "photo"] > kinds[country, "scan"]


@pytest.mark.parametrize("truth", ALL_TRUTHS, ids=lambda t: f"{t.country}-{t.seed}")
def test_every_truth_receipt_adds_up_as_printed(truth: TruthPhotoReceipt):
    items = truth.items
    before_subtotal = sum((i.total for i in items if not i.after_subtotal), Decimal(0))
    if truth.subtotal is not None:
        assert before_subtotal == truth.subtotal
    if truth.tax_included:  # EU: VAT inside the prices
        assert sum((i.total for i in items), Decimal(0)) == truth.total
        for row in truth.vat:
            assert row.net + row.tax == row.gross
            at_rate = [i.total for i in items if i.tax_rate == row.rate]
            assert sum(at_rate, Decimal(0)) == row.gross
            assert cents(row.gross * 100 / (100 + row.rate)) == row.net
        if truth.vat:
            assert sum(r.gross for r in truth.vat) == truth.total
            assert sum(r.tax for r in truth.vat) == truth.tax
    else:  # US: sales tax on the taxable items, added to the subtotal
        assert truth.subtotal is not None and truth.tax is not None
        rates = {i.tax_rate for i in items if i.tax_rate}
        assert len(rates) <= 1
        taxable = sum((i.total for i in items if i.tax_rate), Decimal(0))
        assert truth.tax == cents(taxable * (rates.pop() if rates else 0) / 100)
        assert truth.subtotal + truth.tax == truth.total
    assert truth.total > 0
    for item in items:
        quantity = Decimal(str(item.quantity))
        if item.unit is not None:
            assert item.unit in ("kg", "lb") and item.kind == "item"
            assert cents(quantity * item.unit_price) == item.total
        elif item.unit_price is not None:
            assert quantity * item.unit_price == item.total
            assert quantity == int(quantity) > 1
        assert (item.total < 0) == (item.kind == "discount" or item.name.lower() in LEERGUT)
    text = "\n".join(line.text for line in truth.lines)
    assert truth.merchant in text
    assert all(i.name in text for i in items)  # names as printed
    for line in truth.lines:
        width = truth.columns // 2 if line.size == "wide" else truth.columns
        assert len(line.text) <= width


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 8])  # each country's photo, a scan
def test_images_are_phone_sized_jpegs(seed: int):
    truth, jpeg = receipt_photo(seed)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) < 3_000_000
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    image.load()  # decodes all of it
    width, height = image.size
    assert 800 <= height <= 4032 and 400 <= width < height  # portrait, at most a phone's
    assert truth.kind == ("scan" if seed == 8 else "photo")


def truth_receipt(seed: int, country: str, kind: str) -> TruthPhotoReceipt:
    items = [
        TruthPhotoItem(
            "BANANAS", Decimal("1.44"), quantity=0.482, unit_price=Decimal("2.99"), unit="lb"
        ),
        TruthPhotoItem("OAT MILK 1L", Decimal("3.98"), quantity=2.0, unit_price=Decimal("1.99")),
        TruthPhotoItem("MEMBER SAVINGS", Decimal("-0.50"), kind="discount"),
    ]
    total = Decimal("4.92")
    return TruthPhotoReceipt(
        seed,
        country,
        kind,
        "SHOP",
        "2026-12-06",
        "USD",
        items,
        total,
        Decimal(0),
        total,
        tax_included=False,
        vat=[],
        columns=32,
    )


def found(name: str, total: float, quantity: float = 1.0) -> dict[str, Any]:
    return {"name": name, "total": total, "quantity": quantity, "kind": "item"}


def test_scores_count_matches_quantities_totals_and_consistent_receipts():
    us_photo, de_scan = truth_receipt(1, "US", "photo"), truth_receipt(2, "DE", "scan")
    read = {
        "receipt": {
            "items": [
                found("BANANAS", 1.44, 0.482),  # matched, quantity right
                found("OAT MlLK 1L", 3.98, 1.0),  # matched (one letter misread), quantity wrong
                found("MEMBER SAVINGS", -0.51),  # a cent off: no match
                found("2 @ 1.99", 3.98),  # a quantity line read as an item
            ],
            "total": 4.92,
            "consistent": True,
        }
    }
    one = score_receipt(us_photo, read, 2.0)
    assert (one.truth_items, one.found_items, one.matched) == (3, 4, 2)
    assert (one.quantity_right, one.exact_totals, one.consistent) == (1, 1, 1)
    assert one.precision == 0.5 and one.recall == pytest.approx(2 / 3)
    assert one.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))

    off_by_a_cent = {"receipt": {"items": [], "total": 4.93, "consistent": False}}
    result = score([us_photo, de_scan], [read, off_by_a_cent], [2.0, 4.0])
    overall = result["all"]
    assert (overall.receipts, overall.truth_items, overall.found_items) == (2, 6, 4)
    assert (overall.matched, overall.quantity_right) == (2, 1)
    assert (overall.exact_totals, overall.consistent) == (1, 1)
    assert overall.summary()["p50_s"] == 3.0
    groups = result["groups"]
    assert set(groups) == {"US", "US photo", "photo", "DE", "DE scan", "scan"}
    assert groups["DE scan"].matched == 0 and groups["DE scan"].exact_totals == 0
    assert groups["photo"].matched == 2 and groups["photo"].seconds == [2.0]
    assert [m["seed"] for m in result["misses"]] == [1, 2]
    assert result["misses"][0]["extra"] == ["MEMBER SAVINGS -0.51", "2 @ 1.99 3.98"]
    assert result["misses"][0]["wrong_quantity"] == ["OAT MILK 1L: 1.0 for 2.0"]


def test_items_match_one_to_one_by_exact_total_and_a_close_name():
    truth = truth_receipt(1, "US", "photo")
    twice = [found("BANANAS", 1.44), found("BANANAS", 1.44), found("BANANA CHIPS", 3.98)]
    assert [(t.name, f["name"]) for t, f in match_items(truth, twice)] == [("BANANAS", "BANANAS")]
    assert score_receipt(truth, {"error": "500"}).matched == 0


def test_the_classic_suite_is_scored_the_same_way():
    truth = receipt_data.generate(1000)
    body = {
        "receipt": {
            "items": [found(i.name, float(i.total), float(i.quantity)) for i in truth.items],
            "total": float(truth.total),
            "consistent": True,
        }
    }
    result = score([truth], [body])
    assert result["all"].f1 == 1.0 and result["all"].quantity_right == len(truth.items)
    assert result["groups"] == {} and result["misses"] == []
