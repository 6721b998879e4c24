"""The grammar of receipt lines (serve_app/ocr/receipt_grammar.py): one rule at a time, on
lines as stores print them and as OCR reads them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from serve_app.ocr.receipt_grammar import (
    is_table_row,
    item_kind,
    label_kind,
    parse_amount,
    parse_quantity,
    table_tax,
)


@pytest.mark.parametrize(
    ("line", "value", "currency"),
    [
        ("MILK 3.49", "3.49", None),
        ("RAISIN BLANC 0,86 A", "0.86", None),  # a tax code after the amount
        ("BAGUETTE TRADITION 2,20 1", "2.20", None),  # French tax codes are digits
        ("JAMBON BLANC X4 2,991", "2.99", None),  # ... which OCR glues to the amount
        ("ROLLED OATS 8.40A", "8.40", None),
        ("SC SAVINGS 0.66- F", "-0.66", None),  # US: the minus after the amount
        ("ANY 2 FOR £2.00 -£0.80", "-0.80", "GBP"),
        ("Preisvorteil -0,30 B", "-0.30", None),
        ("STORE COUPON (1.50)", "-1.50", None),
        ("TOTAL A PAYER 20,39 €", "20.39", "EUR"),
        ("16 BALANCE DUE $81.35", "81.35", "USD"),
        ("SUMME EUR 1.234,50", "1234.50", "EUR"),
    ],
)
def test_an_amount_at_the_end(line: str, value: str, currency: str | None):
    found = parse_amount(line)
    assert found is not None
    assert found.value == Decimal(value)
    assert found.currency == currency


@pytest.mark.parametrize("line", ["COLA 1,25L", "Steuer % Netto Steuer Brutto", "8.250 %"])
def test_no_amount_at_the_end(line: str):
    """A volume ends "COLA 1,25L" (a tax code is never L), a rate is not money."""
    assert parse_amount(line) is None


@pytest.mark.parametrize(
    ("line", "quantity", "unit_price", "unit"),
    [
        # multibuy: how many, and the price of how many
        ("2 AT 1 FOR 3.99", "2", "3.99", None),
        ("6 AT 6 FOR 25.50", "6", "4.25", None),
        ("2 @ 2/5.00", "2", "2.50", None),
        # quantity first
        ("3 @ 1.50", "3", "1.50", None),
        ("3 @ 4.98 EA 14.94 F", "3", "4.98", None),
        ("2 Stk x 0,99", "2", "0.99", None),
        ("BROCCOLI 3 \u00d7 £0.59 £1.77", "3", "0.59", None),
        ("0,482 kg x 2,99 EUR/kg", "0.482", "2.99", "kg"),
        ("WT 0.33 lb @ 0.99 /lb", "0.33", "0.99", "lb"),
        ("0,230 kg * 11,90 EUR/kg 2,74 B", "0.230", "11.90", "kg"),
        # price first
        ("0,79 x 2", "2", "0.79", None),
        ("1,29 \u00d7 3 3,87 A", "3", "1.29", None),
        # a weight line whose sign OCR lost or garbled: the "/kg" says what it is
        ("1,438 kg2,49 EUR/kg", "1.438", "2.49", "kg"),
        ("TOMATEN RISPE 0,687kg_x2,99 EUR/kg", "0.687", "2.99", "kg"),
        ("1.372 kg 0 0.78 €/kg", "1.372", "0.78", "kg"),
        ("3.801 lb @ $0.59/1b $2.24", "3.801", "0.59", "lb"),  # "1b": OCR's "lb"
        ("GALA APPLES 0.931 1b @ $1.49/lb", "0.931", "1.49", "lb"),
        ("APFELSCHORLE 1L 2 5tk x 0,89", "2", "0.89", None),  # "Stk" as OCR read it
        ("3 @ 3 F0R 14.25", "3", "4.75", None),
    ],
)
def test_a_quantity_clause(line: str, quantity: str, unit_price: str, unit: str | None):
    found = parse_quantity(line)
    assert found is not None
    assert (found.quantity, found.unit_price.quantize(Decimal("0.01")), found.unit) == (
        Decimal(quantity),
        Decimal(unit_price),
        unit,
    )


def test_the_quantity_clause_fits_the_total_to_the_cent():
    quantity = parse_quantity("0,482 kg x 2,99 EUR/kg")
    assert quantity is not None
    assert quantity.fits(Decimal("1.44")) and quantity.fits(Decimal("-1.44"))
    assert not quantity.fits(Decimal("1.46"))


@pytest.mark.parametrize("line", ["MILK 3.49", "BANANAS", "TOTAL 12.27", "CAISSE 040 TICKET 64"])
def test_no_quantity_clause(line: str):
    assert parse_quantity(line) is None


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("SUBTOTAL", "subtotal"),
        ("SUB TOTAL", "subtotal"),
        ("Zwischensumme", "subtotal"),
        ("SOUS TOTAL", "subtotal"),
        ("TOTAL", "total"),
        ("9 BALANCE DUE", "total"),  # an item count before it
        ("TOTAL TO PAY", "total"),
        ("zu zahlen", "total"),
        ("SUMME EUR", "total"),
        ("TOTAL A PAYER", "total"),
        ("TOTAL TTC", "total"),
        ("TOTAL SAVINGS", "summary"),  # sums savings, not what is paid
        # as OCR misreads them
        ("BALANCEDUE", "total"),
        ("B BALANCE", "total"),  # the item count "8" read as "B"
        ("SUS TOTAL", "subtotal"),
        ("SOUSTOTAL", "subtotal"),
        ("TX6.00%", "tax"),
        ("YOU SAVED", "payment"),
        ("# ITEMS SOLD", "payment"),
        ("TAX", "tax"),
        ("SALES TAX 6.000%", "tax"),
        ("MwSt 19%", "tax"),
        ("VISA TEND", "payment"),
        ("Geg. Bar", "payment"),
        ("Rückgeld", "payment"),
        ("CHANGE DUE", "payment"),
        ("CB SANS CONTACT", "payment"),
        ("Betrag EUR", "payment"),
        ("OAT MILK 1L", "item"),
    ],
)
def test_what_a_label_says_the_amount_is(label: str, kind: str):
    assert label_kind(label) == kind


@pytest.mark.parametrize(
    ("name", "total", "kind"),
    [
        ("PFAND", "0.25", "deposit"),
        ("LEERGUT", "-0.75", "deposit"),
        ("BTL DEP", "0.40", "deposit"),
        ("Preisvorteil", "-0.30", "discount"),
        ("ANY 3 FOR £1.00", "0.77", "discount"),  # OCR lost the minus; the words say it
        ("MEMBER PRICE SAVINGS", "-1.73", "discount"),
        ("REDUCED TO CLEAR", "1.29", "discount"),
        ("BON DE REDUCTION", "-1.43", "discount"),
        ("ANYTHING", "-1.00", "discount"),
        ("OAT MILK 1L", "2.49", "item"),
    ],
)
def test_an_items_kind(name: str, total: str, kind: str):
    assert item_kind(name, Decimal(total)) == kind


@pytest.mark.parametrize(
    ("line", "row", "tax"),
    [
        ("A= 19,0% 4,21 0,80 5,01", True, None),  # a rate's row: not the table's total
        ("2 20,00% 4,58 0,91 5,49", True, None),
        ("Summe 13,85 1,47 15,32", True, "1.47"),  # the totals row: its middle amount
        ("TOTAUX 36,53 3,26 39,79", True, "3.26"),
        ("10.65 1.62 12.27", True, None),
        ("MILK 1.25", False, None),
        ("SALES TAX 6.000% 0.63", False, None),
    ],
)
def test_a_vat_table_row(line: str, row: bool, tax: str | None):
    assert is_table_row(line) is row
    assert table_tax(line) == (Decimal(tax) if tax else None)
