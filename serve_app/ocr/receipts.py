"""Receipt text lines -> merchant, date, currency, line items and totals (pure Python).

The parser works line by line on what any OCR (or a pasted e-receipt) produced. Money is
handled as ``Decimal`` so that ``consistent`` is an exact comparison.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")

_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW"}
_CURRENCY_CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "PLN", "JPY")
_SYMBOL_CLASS = "$€£¥₹₩"

# An amount at the end of a line: optional sign/currency, digits with . or , decimals,
# optional trailing currency, minus, and a one-letter tax code ("4.99 A", "1,99 € B").
_AMOUNT_AT_END = re.compile(
    rf"""
    (?P<neg_open>\()?
    (?P<sign>-)?\s*
    (?P<pre>[{_SYMBOL_CLASS}]|(?:{"|".join(_CURRENCY_CODES)})\s?)?\s*
    (?P<sign2>-)?
    (?P<num>\d{{1,3}}(?:[.,\s]\d{{3}})*[.,]\d{{2}}|\d+[.,]\d{{2}})
    \s*(?P<post>[{_SYMBOL_CLASS}]|(?:{"|".join(_CURRENCY_CODES)}))?
    (?P<trail_neg>-)?
    (?P<neg_close>\))?
    # a tax code after the amount: "4.99 A", or "4.99A" as OCR often reads it
    (?:\s+(?P<taxcode>[A-Z*]{{1,2}})|(?P<taxcode_attached>[A-Z]))?
    \s*$
    """,
    re.VERBOSE,
)
_QTY_AT = re.compile(
    r"(?P<qty>\d+(?:[.,]\d+)?)\s*(?P<unit>kg|g|lb|lbs|oz|l|ml|ea|pcs?)?\s*"
    r"(?:@|x|X|\u00d7|\*)\s*"
    rf"[{_SYMBOL_CLASS}]?\s*(?P<price>\d+[.,]\d{{2,3}})\s*(?:[{_SYMBOL_CLASS}])?"
    r"(?:\s*/\s*(?P<per>kg|g|lb|oz|l|ea))?",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^[\s\-=_*#.~]{3,}$")

_SUBTOTAL = re.compile(r"\b(sub\s*-?\s*total|sous[\s-]total|zwischensumme)\b", re.I)
_TAX = re.compile(r"\b(tax|vat|tva|gst|hst|pst|mwst|ust|iva|btw)\b", re.I)
_TOTAL = re.compile(
    r"^\W*(grand\s+total|total\s+[àa]\s+payer|total\s+due|amount\s+due|balance\s+due|"
    r"total|sum|summe|gesamt|montant|balance)\b",
    re.I,
)
_DISCOUNT = re.compile(
    r"\b(discount|coupon|savings?|promo|off|rabais|remise|rabatt|reduction|member\s+price)\b",
    re.I,
)
_DEPOSIT = re.compile(r"\b(deposit|crv|pfand|consigne|bottle\s+dep)\b", re.I)
_NOT_ITEM = re.compile(
    r"\b(visa|mastercard|amex|debit|credit|cash|change|tender(ed)?|card|paid|payment|"
    r"karte|girocard|rendu|esp[eè]ces|items?\s+sold|number\s+of\s+items|loyalty\s+points|points)\b",
    re.I,
)
_DATE_PATTERNS = (
    re.compile(r"\b(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\b"),
    re.compile(r"\b(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<y>\d{4}|\d{2})\b"),
)
_LEADING_CODE = re.compile(r"^\s*\d{5,}\s+")
# Header lines that are never the first part of an item's name
_HEADER_WORDS = re.compile(
    r"\b(cashier|register|reg|trans|transaction|store|tel|phone|receipt|invoice|order|"
    r"served|clerk|lane|till|kasse|caisse|bon)\b|#\s*\d",
    re.I,
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Amount:
    value: Decimal
    start: int
    currency: str | None


def parse_amount(text: str) -> _Amount | None:
    """The money amount that ends ``text``, if any."""
    match = _AMOUNT_AT_END.search(text)
    if not match:
        return None
    raw = match["num"].replace(" ", "")
    # The last separator is the decimal one; any other is a thousands separator.
    digits = raw[:-3].replace(",", "").replace(".", "") + "." + raw[-2:]
    try:
        value = Decimal(digits)
    except InvalidOperation:
        return None
    negative = bool(
        match["sign"]
        or match["sign2"]
        or match["trail_neg"]
        or (match["neg_open"] and match["neg_close"])
    )
    symbol = (match["pre"] or match["post"] or "").strip()
    currency = _CURRENCY_SYMBOLS.get(symbol) or (symbol if symbol in _CURRENCY_CODES else None)
    return _Amount(-value if negative else value, match.start(), currency)


def _to_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(CENT))


def _find_date(line: str, prefer_day_first: bool) -> str | None:
    for pattern in _DATE_PATTERNS:
        match = pattern.search(line)
        if not match:
            continue
        groups = match.groupdict()
        year = int(groups["y"])
        year = year + 2000 if year < 100 else year
        if "m" in groups and groups.get("m"):
            month, day = int(groups["m"]), int(groups["d"])
        else:
            a, b = int(groups["a"]), int(groups["b"])
            day_first = a > 12 or (prefer_day_first and b <= 12)
            day, month = (a, b) if day_first else (b, a)
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            continue
    return None


def _clean_name(name: str) -> str:
    name = _LEADING_CODE.sub("", name)
    return re.sub(r"\s{2,}", " ", name).strip(" .:-*\t")


def _detect_currency(lines: list[str]) -> str | None:
    counts: dict[str, int] = {}
    for line in lines:
        amount = parse_amount(line)
        if amount and amount.currency:
            counts[amount.currency] = counts.get(amount.currency, 0) + 1
        for code in _CURRENCY_CODES:
            if re.search(rf"\b{code}\b", line):
                counts[code] = counts.get(code, 0) + 1
        for symbol, code in _CURRENCY_SYMBOLS.items():
            if symbol in line:
                counts[code] = counts.get(code, 0) + 1
    if counts:
        return max(counts, key=counts.__getitem__)
    if any(re.search(r"total\s+[àa]\s+payer|tva", line, re.I) for line in lines):
        return "EUR"
    return None


class ReceiptParser:
    """Parses receipt lines; one instance is reusable and thread-safe (no state)."""

    def parse(self, lines: list[str]) -> Receipt:
        lines = [line.rstrip() for line in lines if line and line.strip()]
        receipt = Receipt()
        receipt.currency = _detect_currency(lines)
        day_first = receipt.currency not in (None, "USD", "CAD")
        tax_total = Decimal(0)
        tax_seen = False
        subtotal = total = None
        pending_name: list[str] = []
        pending_qty: re.Match[str] | None = None
        seen_amount = False
        header: list[str] = []

        after_date = False  # header lines come before the date; item names after it
        for line in lines:
            if receipt.date is None:
                found = _find_date(line, day_first)
                if found:
                    receipt.date = found
                    if not seen_amount:
                        after_date = True
                        continue
            if _SEPARATOR.match(line):
                pending_name = []
                if not seen_amount:
                    seen_amount = True  # a rule under the header ends the header
                continue
            qty_only = _QTY_AT.fullmatch(line.strip())
            if qty_only:  # "3 @ 1.50" alone: the quantity of the next item line
                pending_qty = qty_only
                continue
            amount = parse_amount(line)
            if amount is None:
                if not seen_amount and after_date and not _HEADER_WORDS.search(line):
                    # after the date and before any amount: the first part of a name wrapped
                    # onto two lines (OCR often drops the rule that ends the header)
                    pending_name.append(line.strip())
                elif not seen_amount:
                    header.append(line)
                elif not (_NOT_ITEM.search(line) or _TOTAL.search(line)):
                    pending_name.append(line.strip())
                continue
            label = line[: amount.start].strip()
            if _SUBTOTAL.search(label):
                subtotal = amount.value
            elif _TAX.search(label) and not _TOTAL.match(label):
                tax_total += amount.value
                tax_seen = True
            elif _TOTAL.search(label):
                if total is None:
                    total = amount.value
            elif _NOT_ITEM.search(label) or total is not None:
                pass  # payment and change lines; nothing after the total is a purchase
            else:
                name_only = _QTY_AT.sub("", label).strip()
                if not name_only and not pending_name and not seen_amount and len(header) > 1:
                    pending_name = [header.pop()]  # "BANANAS" above the first "3 @ 0.29 0.87"
                item = self._item(label, amount.value, pending_name, pending_qty)
                if item is not None:
                    receipt.items.append(item)
                pending_qty = None
            seen_amount = True
            pending_name = []

        receipt.merchant = self._merchant(header)
        receipt.subtotal = _to_float(subtotal)
        receipt.tax = _to_float(tax_total) if tax_seen else None
        receipt.total = _to_float(total)
        receipt.consistent = self._consistent(receipt.items, subtotal, tax_total, total)
        return receipt

    def _item(
        self,
        label: str,
        total: Decimal,
        pending_name: list[str],
        pending_qty: re.Match[str] | None,
    ) -> ReceiptItem | None:
        inline = _QTY_AT.search(label)
        qty_match = inline or pending_qty
        name_part = label
        quantity: Decimal = Decimal(1)
        unit_price: Decimal | None = None
        unit: str | None = None
        if inline is not None:
            name_part = (label[: inline.start()] + " " + label[inline.end() :]).strip()
        if qty_match is not None:
            quantity = Decimal(qty_match["qty"].replace(",", "."))
            unit_price = Decimal(qty_match["price"].replace(",", "."))
            unit_text = qty_match["unit"] or qty_match["per"]
            unit = unit_text.lower() if unit_text else None
        name = _clean_name(" ".join([*pending_name, name_part]))
        if not name:
            return None
        kind = "item"
        if total < 0 or _DISCOUNT.search(name):
            kind = "discount"
            total = -abs(total)
        elif _DEPOSIT.search(name):
            kind = "deposit"
        return ReceiptItem(
            name=name,
            quantity=float(quantity),
            total=float(total),
            unit_price=_to_float(unit_price) if unit_price is not None else None,
            unit=unit,
            kind=kind,
        )

    @staticmethod
    def _merchant(header: list[str]) -> str | None:
        for line in header[:4]:
            text = line.strip()
            letters = sum(c.isalpha() for c in text)
            if letters >= 3 and not re.search(
                r"\b(tel|phone|www\.|http|street|st\.|ave)\b|\d{3}[-\s]\d{3,4}", text, re.I
            ):
                return _clean_name(text)
        return None

    @staticmethod
    def _consistent(
        items: list[ReceiptItem],
        subtotal: Decimal | None,
        tax: Decimal,
        total: Decimal | None,
    ) -> bool:
        if not items or (subtotal is None and total is None):
            return False
        items_sum = sum((Decimal(str(i.total)) for i in items), Decimal(0))
        if subtotal is not None:
            if abs(items_sum - subtotal) >= CENT:
                return False
            return (
                total is None or abs(subtotal + tax - total) < CENT or abs(subtotal - total) < CENT
            )
        assert total is not None
        # Taxes printed on top (US) or included in the prices (VAT receipts).
        return abs(items_sum + tax - total) < CENT or abs(items_sum - total) < CENT
