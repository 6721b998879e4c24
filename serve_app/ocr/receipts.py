"""Receipt text lines -> merchant, date, currency, line items and totals (pure Python).

Each line is read by :mod:`serve_app.ocr.receipt_grammar`, then the receipt in regions (header,
items, savings after the subtotal, tax after the total; docs/models.md). Money is ``Decimal``,
so ``consistent`` is an exact comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from serve_app.ocr.receipt_grammar import (
    CENT,
    Quantity,
    clean_name,
    detect_currency,
    find_date,
    has_name,
    is_header_line,
    is_name_part,
    is_rule,
    is_table_row,
    item_kind,
    label_kind,
    parse_amount,
    parse_quantity,
    table_tax,
)


@dataclass
class ReceiptItem:
    """One purchased line; discounts and coupons have a negative total."""

    name: str
    quantity: float
    total: float
    unit_price: float | None = None
    unit: str | None = None
    kind: str = "item"  # item | discount | deposit


@dataclass
class Receipt:
    """What a receipt says, as far as the lines tell."""

    items: list[ReceiptItem] = field(default_factory=list)
    merchant: str | None = None
    date: str | None = None
    currency: str | None = None
    subtotal: float | None = None
    tax: float | None = None
    total: float | None = None
    consistent: bool = False


def _to_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(CENT))


@dataclass
class _Draft:
    """An item being read: its name, total, and quantity once known."""

    name: str
    total: Decimal
    quantity: Quantity | None = None


@dataclass
class _Reading:
    """The parser's state while it reads one receipt's lines."""

    drafts: list[_Draft] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    pending_name: list[str] = field(default_factory=list)
    pending_qty: Quantity | None = None
    subtotal: Decimal | None = None
    before_subtotal: int = 0  # items read when the subtotal came (savings follow it)
    total: Decimal | None = None
    taxes: list[Decimal] = field(default_factory=list)  # the tax lines' amounts
    table_tax: Decimal | None = None
    seen_amount: bool = False
    after_date: bool = False
    votes: dict[str, int] = field(default_factory=lambda: {"above": 0, "below": 0})


class ReceiptParser:
    """Parses receipt lines; one instance is reusable and thread-safe (no state)."""

    def parse(self, lines: list[str]) -> Receipt:
        lines = [line.rstrip() for line in lines if line and line.strip()]
        receipt = Receipt(currency=detect_currency(lines))
        day_first = receipt.currency not in (None, "USD", "CAD")
        state = _Reading()
        for line in lines:
            if receipt.date is None and (found := find_date(line, day_first)):
                receipt.date = found
                if not state.seen_amount:
                    state.after_date = True
                    continue
            self._read(line, state)
        if state.pending_qty is not None:  # a quantity under the last item
            self._attach_above(state.pending_qty, state)
        receipt.items = [self._item(draft) for draft in state.drafts]
        receipt.merchant = self._merchant(state.header)
        receipt.subtotal = _to_float(state.subtotal)
        tax = sum(state.taxes, Decimal(0)) if state.taxes else state.table_tax
        receipt.tax = _to_float(tax)
        receipt.total = _to_float(state.total)
        receipt.consistent = self._consistent(state, tax or Decimal(0))
        return receipt

    def _read(self, line: str, state: _Reading) -> None:
        """One line, by its kind and the region it is in."""
        text = line.strip()
        if is_rule(text):
            state.pending_name = []
            state.seen_amount = True  # a rule under the header ends the header
            return
        if state.total is not None:  # after the total: only the tax (VAT printed below it)
            self._read_after_total(text, state)
            return
        quantity = parse_quantity(text)
        if quantity is None and is_table_row(text):
            self._table_tax(text, state)
            state.pending_name = []
            return
        amount = parse_amount(text)
        if amount is not None and quantity is not None and quantity.end > amount.digits_at:
            if has_name(text[: quantity.start]):
                quantity = None  # "Toilettenpapier 8x 3,95": a pack size, then the total
            else:
                amount = None  # "2 x 1,25": the amount at the end is the price of one
        if amount is None:
            self._text_line(text, quantity, state)
            return
        label = text[: amount.start].strip()
        state.seen_amount = True
        kind = label_kind(label)  # a summary ("TOTAL SAVINGS") and a payment count for nothing
        if kind == "subtotal":
            state.subtotal = amount.value
            state.before_subtotal = len(state.drafts)
        elif kind == "tax":
            state.taxes.append(amount.value)
        elif kind == "total":
            state.total = amount.value
        elif kind == "item":
            self._item_line(label, amount.value, quantity, state)
        state.pending_name = []

    def _text_line(self, text: str, quantity: Quantity | None, state: _Reading) -> None:
        """A line without an amount of its own: a quantity, a heading, or part of a name."""
        if state.subtotal is not None:
            return  # the heading of the savings after the subtotal ("Promotions")
        if quantity is not None:
            self._quantity_line(quantity, state)
        elif not state.seen_amount and (not state.after_date or is_header_line(text)):
            state.header.append(text)
        elif is_name_part(text):
            # the first part of a name wrapped onto two lines (after the date and before any
            # amount too: OCR often drops the rule that ends the header)
            state.pending_name.append(text)

    def _read_after_total(self, text: str, state: _Reading) -> None:
        if is_table_row(text):
            self._table_tax(text, state)
            return
        amount = parse_amount(text)
        if amount and label_kind(text[: amount.start].strip()) == "tax":
            state.taxes.append(amount.value)

    @staticmethod
    def _table_tax(text: str, state: _Reading) -> None:
        found = table_tax(text)
        if found is not None:
            state.table_tax = found

    def _quantity_line(self, quantity: Quantity, state: _Reading) -> None:
        """A quantity line without an amount: for the item above when that item is its
        quantity times its price, else held for the next item (:meth:`_item_line`)."""
        if state.pending_qty is not None:  # two in a row: the first was the item above's
            self._attach_above(state.pending_qty, state)
        above = state.drafts[-1] if state.drafts and not state.pending_name else None
        if above is not None and above.quantity is None and quantity.fits(above.total):
            above.quantity = quantity
            state.votes["below"] += 1
        else:
            state.pending_qty = quantity

    def _attach_above(self, quantity: Quantity, state: _Reading) -> None:
        """A held quantity line that the next item did not take: the item above's, where it
        has none and the quantity fits it or the receipt prints quantities below items."""
        state.pending_qty = None
        above = state.drafts[-1] if state.drafts else None
        if (
            above is not None
            and above.quantity is None
            and (quantity.fits(above.total) or state.votes["below"] > state.votes["above"])
        ):
            above.quantity = quantity

    def _item_line(
        self, label: str, total: Decimal, quantity: Quantity | None, state: _Reading
    ) -> None:
        name_part = label
        if quantity is not None:
            name_part = (label[: quantity.start] + " " + label[quantity.end :]).strip()
        if not name_part and not state.pending_name and state.header and not state.drafts:
            state.pending_name = [state.header.pop()]  # "BANANAS" above "3 @ 0.29 0.87"
        name = clean_name(" ".join([*state.pending_name, name_part]))
        if not name:
            return
        draft = _Draft(name, total, quantity)
        held, state.pending_qty = state.pending_qty, None
        if held is not None:
            if draft.quantity is None and (
                held.fits(total) or state.votes["above"] >= state.votes["below"]
            ):
                draft.quantity = held  # printed above its item
                state.votes["above"] += held.fits(total)
            else:
                state.pending_qty = held
                self._attach_above(held, state)
        state.drafts.append(draft)

    @staticmethod
    def _item(draft: _Draft) -> ReceiptItem:
        held = draft.quantity
        total = draft.total
        kind = item_kind(draft.name, total)
        if kind == "discount":
            total = -abs(total)  # OCR often loses a discount's minus
        return ReceiptItem(
            name=draft.name,
            quantity=float(held.quantity) if held else 1.0,
            total=float(total),
            unit_price=_to_float(held.unit_price) if held else None,
            unit=held.unit if held else None,
            kind=kind,
        )

    @staticmethod
    def _merchant(header: list[str]) -> str | None:
        for text in header[:4]:  # stripped by _read
            letters = sum(c.isalpha() for c in text)
            if letters >= 3 and not re.search(
                r"\b(tel|phone|www\.|http|street|st\.|ave)\b|\d{3}[-\s]\d{3,4}", text, re.I
            ):
                return clean_name(text)
        return None

    @staticmethod
    def _consistent(state: _Reading, tax: Decimal) -> bool:
        """The items add up to the total, tax on top or included, and the items before the
        subtotal to the subtotal (savings printed after it come off the total)."""
        if not state.drafts or (state.subtotal is None and state.total is None):
            return False
        totals = [Decimal(str(ReceiptParser._item(d).total)) for d in state.drafts]
        items_sum = sum(totals, Decimal(0))
        target = state.total if state.total is not None else state.subtotal
        assert target is not None
        if abs(items_sum - target) >= CENT and abs(items_sum + tax - target) >= CENT:
            return False
        if state.subtotal is None or state.total is None:
            return True
        before = sum(totals[: state.before_subtotal], Decimal(0))
        return abs(before - state.subtotal) < CENT or abs(items_sum - state.subtotal) < CENT
