"""ReceiptParser on receipts written as text lines, with exact expected items and totals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serve_app.ocr.receipt_grammar import _CURRENCY_CODES, item_kind, label_kind, parse_amount
from serve_app.ocr.receipts import ReceiptParser

PARSER = ReceiptParser()


def items(receipt):
    return [(i.name, i.quantity, i.unit_price, i.total, i.kind) for i in receipt.items]


FIXTURES = {
    "us_qty_line_wrap_coupon": (
        [
            "FRESH MART",
            "123 Main St, Springfield",
            "11/27/2026 10:42",
            "MILK 2% 1 GAL   3.49",
            "BANANAS",
            "3 @ 0.29   0.87",
            "ORGANIC FREE RANGE",
            "EGGS 12PK  5.49 F",
            "COUPON EGGS  -1.00",
            "SUBTOTAL  8.85",
            "TAX 0.35",
            "TOTAL  9.20",
            "VISA 9.20",
        ],
        dict(merchant="FRESH MART", date="2026-11-27", subtotal=8.85, tax=0.35, total=9.20),
        [
            ("MILK 2% 1 GAL", 1, None, 3.49, "item"),
            ("BANANAS", 3, 0.29, 0.87, "item"),
            ("ORGANIC FREE RANGE EGGS 12PK", 1, None, 5.49, "item"),
            ("COUPON EGGS", 1, None, -1.00, "discount"),
        ],
        True,
    ),
    "inline_x_quantity": (
        [
            "CORNER SHOP",
            "COLA 330ML 2 x 1.99   3.98",
            "CRISPS  1.25",
            "TOTAL 5.23",
            "CASH 10.00",
            "CHANGE 4.77",
        ],
        dict(merchant="CORNER SHOP", total=5.23, tax=None, subtotal=None),
        [("COLA 330ML", 2, 1.99, 3.98, "item"), ("CRISPS", 1, None, 1.25, "item")],
        True,
    ),
    "weighed_item": (
        [
            "GREEN GROCER",
            "TOMATOES",
            "0.452 kg @ 3.99/kg   1.80",
            "APPLES 1.2 kg @ 2.50/kg 3.00",
            "TOTAL 4.80",
        ],
        dict(total=4.80),
        [("TOMATOES", 0.452, 3.99, 1.80, "item"), ("APPLES", 1.2, 2.50, 3.00, "item")],
        True,
    ),
    "german_comma_decimals_vat_included": (
        [
            "BIOMARKT GmbH",
            "27.11.2026",
            "Milch 3,5% 1L      1,19 A",
            "Vollkornbrot       2,49 A",
            "Pfand              0,25 B",
            "Rabatt Brot       -0,50 A",
            "SUMME EUR          3,43",
            "MwSt 7% A          0,21",
            "Karte              3,43",
        ],
        dict(merchant="BIOMARKT GmbH", date="2026-11-27", currency="EUR", total=3.43, tax=0.21),
        [
            ("Milch 3,5% 1L", 1, None, 1.19, "item"),
            ("Vollkornbrot", 1, None, 2.49, "item"),
            ("Pfand", 1, None, 0.25, "deposit"),
            ("Rabatt Brot", 1, None, -0.50, "discount"),
        ],
        True,
    ),
    "currency_after": (
        ["Épicerie Martin", "Baguette 1,20 €", "Beurre 2,85 €", "TOTAL 4,05 €"],
        dict(currency="EUR", total=4.05),
        [("Baguette", 1, None, 1.20, "item"), ("Beurre", 1, None, 2.85, "item")],
        True,
    ),
    "currency_before": (
        ["THE FARM SHOP", "Free range eggs £2.50", "Cheddar £3.75", "Balance due £6.25"],
        dict(currency="GBP", total=6.25),
        [("Free range eggs", 1, None, 2.50, "item"), ("Cheddar", 1, None, 3.75, "item")],
        True,
    ),
    "french_total_a_payer_tva": (
        [
            "CARREFOUR CITY",
            "Le 03/02/2026",
            "LAIT DEMI ECREME   0,99",
            "POMMES GOLDEN      2,15",
            "REMISE FIDELITE   -0,30",
            "TOTAL A PAYER      2,84",
            "dont TVA 5,5%      0,15",
            "ESPECES            5,00",
            "RENDU              2,16",
        ],
        dict(merchant="CARREFOUR CITY", date="2026-02-03", currency="EUR", total=2.84, tax=0.15),
        [
            ("LAIT DEMI ECREME", 1, None, 0.99, "item"),
            ("POMMES GOLDEN", 1, None, 2.15, "item"),
            ("REMISE FIDELITE", 1, None, -0.30, "discount"),
        ],
        True,
    ),
    "trailing_tax_codes_and_sum": (
        ["SUPERSAVE", "BREAD   2.99 N", "SOAP    4.99 T", "SUM     7.98"],
        dict(total=7.98),
        [("BREAD", 1, None, 2.99, "item"), ("SOAP", 1, None, 4.99, "item")],
        True,
    ),
    "uk_vat_lines": (
        ["BIG STORE PLC", "WINE RED 750ML   8.00", "CHEESE 4.00", "TOTAL 12.00", "VAT 20% 1.33"],
        dict(total=12.00, tax=1.33, currency=None),
        [("WINE RED 750ML", 1, None, 8.00, "item"), ("CHEESE", 1, None, 4.00, "item")],
        True,
    ),
    "bottle_deposit_and_crv": (
        ["QUICK STOP", "WATER 6PK  3.99", "CRV  0.30", "BOTTLE DEPOSIT 0.10", "TOTAL 4.39"],
        dict(total=4.39),
        [
            ("WATER 6PK", 1, None, 3.99, "item"),
            ("CRV", 1, None, 0.30, "deposit"),
            ("BOTTLE DEPOSIT", 1, None, 0.10, "deposit"),
        ],
        True,
    ),
    "trailing_minus_discount_and_member_savings": (
        ["MEGA MART", "STEAK 12.00", "MEMBER SAVINGS 2.00-", "TOTAL 10.00"],
        dict(total=10.00),
        [("STEAK", 1, None, 12.00, "item"), ("MEMBER SAVINGS", 1, None, -2.00, "discount")],
        True,
    ),
    "inconsistent_total": (
        ["SHOP", "RICE 2.00", "BEANS 1.00", "TOTAL 5.00"],
        dict(total=5.00),
        [("RICE", 1, None, 2.00, "item"), ("BEANS", 1, None, 1.00, "item")],
        False,
    ),
    "sku_codes_and_separator": (
        [
            "DISCOUNT FOODS",
            "----------------------",
            "041220576463 PASTA 500G   1.29",
            "041220998877 PASSATA      0.99",
            "----------------------",
            "SUBTOTAL 2.28",
            "GRAND TOTAL 2.28",
        ],
        dict(subtotal=2.28, total=2.28, merchant="DISCOUNT FOODS"),
        [("PASTA 500G", 1, None, 1.29, "item"), ("PASSATA", 1, None, 0.99, "item")],
        True,
    ),
    "thousands_separator_and_iso_date": (
        ["CASH & CARRY", "2026-03-14", "RICE 25KG x 40  1.234,00", "TOTAL 1.234,00 EUR"],
        dict(date="2026-03-14", total=1234.00, currency="EUR"),
        [("RICE 25KG x 40", 1, None, 1234.00, "item")],
        True,
    ),
    "qty_line_before_name": (
        ["DELI", "3 @ 1.50", "BAGELS  4.50", "TOTAL 4.50"],
        dict(total=4.50),
        [("BAGELS", 3, 1.50, 4.50, "item")],
        True,
    ),
    "amount_due_with_tax_on_top": (
        ["PANTRY PLUS", "OATS 3.00", "HONEY 6.00", "SALES TAX 0.72", "AMOUNT DUE 9.72"],
        dict(total=9.72, tax=0.72),
        [("OATS", 1, None, 3.00, "item"), ("HONEY", 1, None, 6.00, "item")],
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_receipt_fixture(name: str):
    lines, fields, expected_items, consistent = FIXTURES[name]
    receipt = PARSER.parse(lines)
    got = items(receipt)
    assert [(n, q, p, t, k) for n, q, p, t, k in got] == [
        (n, float(q), p, t, k) for n, q, p, t, k in expected_items
    ]
    for key, value in fields.items():
        assert getattr(receipt, key) == value, key
    assert receipt.consistent is consistent


def test_at_least_fifteen_fixtures():
    assert len(FIXTURES) >= 15


@pytest.mark.parametrize(
    ("text", "value"),
    [("4.99 A", "4.99"), ("1,99", "1.99"), ("€3.50", "3.50"), ("3,50 €", "3.50"),
     ("-1.00", "-1.00"), ("1.00-", "-1.00"), ("(2.00)", "-2.00"), ("1,234.56", "1234.56"),
     ("1.234,56", "1234.56"), ("$ 12.30", "12.30")],
)  # fmt: skip
def test_amounts(text: str, value: str):
    amount = parse_amount(f"ITEM {text}")
    assert amount is not None
    assert str(amount.value) == value


def test_empty_and_amountless_input():
    assert PARSER.parse([]).items == []
    receipt = PARSER.parse(["", "   ", "THANK YOU", "COME AGAIN"])
    assert receipt.items == [] and receipt.total is None and receipt.consistent is False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=40))
def test_arbitrary_text_never_crashes(lines: list[str]):
    receipt = PARSER.parse(lines)
    assert isinstance(receipt.consistent, bool)
    assert all(isinstance(i.total, float) for i in receipt.items)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            # item names, not the receipt's own words ("VAT 0.00" is a tax line, not an item)
            st.from_regex(r"[A-Z][A-Z ]{2,15}", fullmatch=True).filter(
                lambda name: (
                    label_kind(name) == "item"
                    and item_kind(name, Decimal(1)) == "item"
                    # "AUD 0.00" is an amount in Australian dollars, not an item named AUD
                    and not set(name.split()) & set(_CURRENCY_CODES)
                )
            ),
            st.decimals(min_value=0, max_value=500, places=2, allow_nan=False),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_generated_receipts_add_up(rows):
    lines = ["GENERATED STORE"] + [f"{name.strip() or 'ITEM'} {price:.2f}" for name, price in rows]
    total = sum(price for _, price in rows)
    lines.append(f"TOTAL {total:.2f}")
    receipt = PARSER.parse(lines)
    assert len(receipt.items) == len(rows)
    assert receipt.total == float(total)
    assert receipt.consistent


def test_as_ocr_reads_them_a_tax_code_against_the_amount_and_no_rule_under_the_header():
    """rapidocr drops the spaces in "8.40 A" and the dashed rule under the header; found by
    the receipt benchmark (python -m benchmarks.receipts)."""
    lines = [
        "DAILY BASKET",
        "553 MARKET RD",
        "22/09/2026 18:12",
        "ORGANIC FREE RANGE",  # the first item's name, wrapped onto two lines
        "EGGS 12PK 3.63 B",
        "ROLLED OATS 8.40A",
        "SOURDOUGH LOAF 5.70 B",
        "SUBTOTAL 17.73",
        "TOTAL 17.73",
    ]
    receipt = PARSER.parse(lines)
    assert [(i.name, i.total) for i in receipt.items] == [
        ("ORGANIC FREE RANGE EGGS 12PK", 3.63),
        ("ROLLED OATS", 8.40),
        ("SOURDOUGH LOAF", 5.70),
    ]
    assert receipt.merchant == "DAILY BASKET" and receipt.consistent


def test_header_lines_after_the_date_are_not_item_names():
    lines = [
        "FRESH MART",
        "11/27/2026 10:42",
        "CASHIER: ANNA",
        "STORE #042",
        "MILK 3.49",
        "TOTAL 3.49",
    ]
    receipt = PARSER.parse(lines)
    assert [(i.name, i.total) for i in receipt.items] == [("MILK", 3.49)]


def items_of(lines: list[str]) -> list[tuple]:
    receipt = PARSER.parse(lines)
    return [(i.name, i.quantity, i.unit_price, i.unit, i.total, i.kind) for i in receipt.items]


def test_a_weight_line_under_its_item():
    """US and UK print the weight under the item; its product is the amount above."""
    assert items_of(
        ["MILK 1.25", "LOOSE BANANAS £1.07", "1.372 kg @ £0.78/kg", "BREAD 1.10", "TOTAL 3.42"]
    ) == [
        ("MILK", 1, None, None, 1.25, "item"),
        ("LOOSE BANANAS", 1.372, 0.78, "kg", 1.07, "item"),
        ("BREAD", 1, None, None, 1.10, "item"),
    ]


def test_a_quantity_line_above_its_item():
    """German stores print "2 x 1,25" above the item, whose own line carries the total."""
    assert items_of(["BROT 1,99 B", "2 x 1,25", "COLA 1,25L 2,50 A", "SUMME EUR 4,49"]) == [
        ("BROT", 1, None, None, 1.99, "item"),
        ("COLA 1,25L", 2, 1.25, None, 2.50, "item"),
    ]


def test_a_quantity_line_that_fits_neither_goes_where_the_receipts_others_go():
    """Here quantities are printed below their items (the first one fits its item above),
    so "4 @ 0.50", whose product is not the next item's total, is the item above's too."""
    assert items_of(["GUM 1.00", "2 @ 0.50", "SODA 2.00", "4 @ 0.50", "CHIPS 3.00", "TOTAL 6.00"])[
        :2
    ] == [
        ("GUM", 2, 0.50, None, 1.00, "item"),
        ("SODA", 4, 0.50, None, 2.00, "item"),
    ]


def test_quantity_lines_with_their_own_amount():
    assert items_of(
        [
            "GREEK YOGURT 32OZ",
            "6 AT 1 FOR 5.48 32.88",  # a multibuy with the line's amount, under the name
            "CROISSANTS X6 2 \u00d7 2,40 € 4,80 1",  # inline, after the name
            "HAFERFLOCKEN 500G",
            "0,89 x 2 1,78 B",  # price first
            "TOTAL 39.46",
        ]
    ) == [
        ("GREEK YOGURT 32OZ", 6, 5.48, None, 32.88, "item"),
        ("CROISSANTS X6", 2, 2.40, None, 4.80, "item"),
        ("HAFERFLOCKEN 500G", 2, 0.89, None, 1.78, "item"),
    ]


def test_a_pack_size_in_the_name_is_not_a_quantity():
    assert items_of(["Toilettenpapier 8x 3,95", "zu zahlen 3,95"]) == [
        ("Toilettenpapier 8x", 1, None, None, 3.95, "item"),
    ]


def test_us_receipt_savings_after_the_subtotal_and_tax_on_top():
    receipt = PARSER.parse(
        [
            "MAPLE MARKET",
            "COLA 12PK CANS 6.98 T",
            "BTL DEP 0.60",
            "SUBTOTAL 7.58",
            "MEMBER SAVINGS 1.00-",  # after the subtotal: comes off the total
            "TAX 0.49",
            "9 BALANCE DUE $7.07",
            "VISA TEND 7.07",
            "CHANGE DUE 0.00",
            "TOTAL SAVINGS 1.00",  # a summary, not the total
        ]
    )
    assert [(i.name, i.total, i.kind) for i in receipt.items] == [
        ("COLA 12PK CANS", 6.98, "item"),
        ("BTL DEP", 0.60, "deposit"),
        ("MEMBER SAVINGS", -1.00, "discount"),
    ]
    assert (receipt.subtotal, receipt.tax, receipt.total) == (7.58, 0.49, 7.07)
    assert receipt.consistent


def test_german_receipt_pfand_leergut_card_slip_and_vat_table():
    receipt = PARSER.parse(
        [
            "MARKTKAUF WEBER",
            "APFELSCHORLE 1L 0,89 A",
            "PFAND 0,25 A",
            "LEERGUT -0,25 A",
            "Preisvorteil -0,10 A",
            "zu zahlen 0,79",
            "Geg. Kreditkarte EUR 0,79",
            "Steuer % Netto Steuer Brutto",
            "A= 19,0% 0,66 0,13 0,79",
            "Summe 0,66 0,13 0,79",
            "Kundenbeleg",
            "Terminal-ID:22818575",
            "Betrag EUR 0,79",
            "Sie haben 0,10 EUR gespart!",
        ]
    )
    assert [(i.name, i.total, i.kind) for i in receipt.items] == [
        ("APFELSCHORLE 1L", 0.89, "item"),
        ("PFAND", 0.25, "deposit"),
        ("LEERGUT", -0.25, "deposit"),
        ("Preisvorteil", -0.10, "discount"),
    ]
    assert (receipt.total, receipt.tax, receipt.currency) == (0.79, 0.13, "EUR")
    assert receipt.consistent  # VAT included in the prices: the items add up to the total


def test_french_receipt_glued_tax_digits_and_total_a_payer():
    receipt = PARSER.parse(
        [
            "HYPER SOLEIL",
            "JAMBON BLANC X4 2,991",
            "BAGUETTE TRADITION 2,20 1",
            "BON DE REDUCTION -0,50 1",
            "TOTAL A PAYER 4,69 €",
            ">>>> 3 ARTICLES",
            "CB SANS CONTACT 4,69 €",
            "TVA HT TVA TTC",
            "1 5,50% 4,45 0,24 4,69",
            "TOTAUX 4,45 0,24 4,69",
            "VOUS AVEZ ECONOMISE 0,50 €",
        ]
    )
    assert [(i.name, i.total) for i in receipt.items] == [
        ("JAMBON BLANC X4", 2.99),
        ("BAGUETTE TRADITION", 2.20),
        ("BON DE REDUCTION", -0.50),
    ]
    assert (receipt.total, receipt.tax) == (4.69, 0.24)
    assert receipt.consistent


def test_not_consistent_when_an_item_is_missing():
    receipt = PARSER.parse(["MILK 1.25", "BREAD 1.10", "SUBTOTAL 3.35", "TOTAL 3.35"])
    assert not receipt.consistent
