"""The grammar of a receipt's lines: what each kind of line looks like (pure Python).

Each rule reads one line as OCR or a pasted e-receipt gives it (the forms: docs/models.md);
:mod:`serve_app.ocr.receipts` decides from them and the line's place what the line means.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")

_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW"}
_CURRENCY_CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "PLN", "JPY")
_SYMBOL_CLASS = "".join(_CURRENCY_SYMBOLS)
_CODES = "|".join(_CURRENCY_CODES)
_NUMBER = r"\d{1,3}(?:[.,\s]\d{3})*[.,]\d{2}|\d+[.,]\d{2}"

# An amount ending a line, with sign, currency and tax code ("4.99 A", "1,99 € B", "2,99 1").
_AMOUNT_AT_END = re.compile(
    rf"""
    (?P<neg_open>\()?
    (?P<sign>-)?\s*
    (?P<pre>[{_SYMBOL_CLASS}]|(?:{_CODES})\s?)?\s*
    (?P<sign2>-)?
    (?P<num>{_NUMBER})
    \s*(?P<post>[{_SYMBOL_CLASS}]|(?:{_CODES}))?
    (?P<trail_neg>-)?
    (?P<neg_close>\))?
    # a tax code after the amount: "4.99 A", "4.99A" as OCR often reads it (not "1,25L", a
    # volume), or a digit ("2,99 1", "2,991" as OCR reads it)
    (?:\s+(?P<taxcode>[A-Z*]{{1,2}}|\d)|(?P<taxcode_attached>[A-KM-Z]|[1-4]))?
    \s*$
    """,
    re.VERBOSE,
)
# any amount in a line, not a rate ("8.87%")
_ANY_AMOUNT = re.compile(rf"(?<![\d.,])-?[{_SYMBOL_CLASS}]?-?(?:{_NUMBER})(?![\d.,]|\s*%)")
_PRICE = rf"[{_SYMBOL_CLASS}]?\s*(?P<price>\d+[.,]\d{{2,3}})\s*(?:[{_SYMBOL_CLASS}]|{_CODES})?"
_WEIGHT_UNITS = {"kg", "g", "lb", "lbs", "oz"}
# A quantity clause, the forms stores print (the first that matches a line is used):
_QUANTITY_FORMS = (
    # multibuy: "2 AT 1 FOR 3.99", "6 AT 6 FOR 25.50", "2 @ 2/5.00", "3 @ 3/ 18.75"
    re.compile(
        r"(?P<qty>\d+)\s*(?:@|AT)\s*(?P<per_n>\d+)\s*(?:F[O0]R|/)\s*"
        + _PRICE.replace("(?P<price>", "(?P<per_price>"),
        re.I,
    ),
    # quantity first: "3 @ 1.50", "2 x £1.25", "2 Stk x 0,99", "WT 0.33 lb @ 0.99 /lb",
    # "0,230 kg * 11,90 EUR/kg"
    re.compile(
        r"(?:\bWT\s+)?(?P<qty>\d+(?:[.,]\d+)?)\s*(?P<unit>kg|g|lbs?|1b|oz|l|ml|ea|pcs?|[s5]tk|st)?\.?\s*"
        r"(?:@|x|X|\u00d7|\*)\s*" + _PRICE + r"(?:\s*/\s*(?P<per>kg|g|lb|1b|oz|l|ea))?"
        r"(?:\s*\b(?:EA|each)\b)?",
        re.I,
    ),
    # a weight and a price per unit whose sign OCR lost or garbled: "1,438 kg2,49 EUR/kg",
    # "0,687kg_x2,99 EUR/kg", "1.372 kg 0 0.78 /kg" (the "/kg" at the end says what it is)
    re.compile(
        r"(?P<qty>\d+[.,]\d+)\s*(?P<unit>kg|g|lbs?|oz)[\s_]*(?:[@x\u00d7*0aQ](?=[\s_\d]))?[\s_]*"
        + _PRICE
        + r"\s*/\s*(?P<per>kg|g|lb|1b|oz)",
        re.I,
    ),
    # price first: "0,79 x 2", "0,99 x 2"
    re.compile(
        rf"(?P<price>\d+[.,]\d{{2}})\s*(?:[{_SYMBOL_CLASS}])?\s*(?:x|X|\u00d7|\*)\s*"
        r"(?P<qty>\d+)(?![.,\d])"
    ),
)
_SEPARATOR = re.compile(r"^[\s\-=_*#.~>]{3,}$")

# (also as OCR misreads them: "SUS TOTAL", "SOUSTOTAL", "BALANCEDUE", "TX6.00%", an item
# count "8" before the total read as "B")
_SUBTOTAL = re.compile(r"\b(su[bse8]\s*-?\s*total|sous[\s-]?total|zwischensumme)\b", re.I)
_TAX = re.compile(r"\b(tax|tx|vat|tva|gst|hst|pst|mwst|ust|iva|btw)(\b|(?=\d))", re.I)
_TOTAL = re.compile(
    r"^\W*(?:[\dBOS]{1,3}\s+)?(grand\s+total|total\s+[àa]\s+payer|total\s+to\s+pay|total\s+ttc|"
    r"total\s+due|amount\s+due|balance\s*due|zu\s+zahlen|total|totaux|sum|summe|gesamt\w*|"
    r"montant|balance)\b",
    re.I,
)
# A total-like label that sums savings or counts, not what is paid ("TOTAL SAVINGS -1.72")
_SUMMARY = re.compile(r"\b(sav(ed|ings)|gespart|[ée]conomis[ée]|points?|articles|items)\b", re.I)
_DISCOUNT = re.compile(
    r"\b(discount|coupon|savings?|promo\w*|off|reduced|rabais|remise|rabatt|reduction|r[ée]duction|"
    r"member\s+price|preisvorteil|price\s+cut|bon\s+d.achat|any\s+\d+\s+for|meal\s+deal)\b",
    re.I,
)
_DEPOSIT = re.compile(r"\b(deposit|crv|pfand|consigne|bottle\s+dep|btl\s+dep|leergut)\b", re.I)
_NOT_ITEM = re.compile(
    r"\b(visa|mastercard|amex|debit|credit|cash|change|tender(ed)?|tend|card|paid|payment|"
    r"karte|kreditkarte|girocard|rendu|esp[eè]ces|items?\s+sold|number\s+of\s+items|"
    r"loyalty\s+points|you\s+saved|points|geg(eben)?|r[üu]ckgeld|amount|betrag|cb|contactless|"
    r"sans\s+contact|kundenbeleg|terminal|trace|auth|approval)\b",
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
class Amount:
    value: Decimal
    start: int  # where the amount begins, its sign and currency included
    currency: str | None
    digits_at: int  # where its digits begin


@dataclass
class Quantity:
    """A quantity clause: how many (or how much), at what price each, in what unit."""

    quantity: Decimal
    unit_price: Decimal
    unit: str | None
    start: int
    end: int

    def fits(self, total: Decimal) -> bool:
        """Whether an item of ``total`` is this quantity times this price (to the cent)."""
        return abs(self.quantity * self.unit_price - abs(total)) <= CENT


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def parse_amount(text: str) -> Amount | None:
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
    start = match.start() + len(match[0]) - len(match[0].lstrip())
    return Amount(-value if negative else value, start, currency, match.start("num"))


def parse_quantity(text: str) -> Quantity | None:
    """The quantity clause in ``text``, if any (see :data:`_QUANTITY_FORMS`)."""
    for form in _QUANTITY_FORMS:
        match = form.search(text)
        if not match:
            continue
        groups = match.groupdict()
        quantity = _decimal(groups["qty"])
        if groups.get("per_n"):  # "2 @ 2/5.00": two at two for 5.00
            unit_price = _decimal(groups["per_price"]) / _decimal(groups["per_n"])
        else:
            unit_price = _decimal(groups["price"])
        if quantity <= 0 or unit_price <= 0:
            continue
        unit = (groups.get("unit") or groups.get("per") or "").lower()
        unit = {"lbs": "lb", "1b": "lb"}.get(unit, unit)  # "1b": OCR's "lb"
        end = match.start() + len(match[0].rstrip())
        return Quantity(
            quantity, unit_price, unit if unit in _WEIGHT_UNITS else None, match.start(), end
        )
    return None


def has_name(text: str) -> bool:
    """Whether ``text`` holds words, not just a weighing mark or a currency."""
    return bool(re.search(r"[^\W\d_]{2,}", re.sub(r"\bWT\b", "", text)))


def is_table_row(text: str) -> bool:
    """A row of a VAT summary: three amounts or more, or a rate and two."""
    amounts = len(_ANY_AMOUNT.findall(text))
    return amounts >= 3 or (amounts >= 2 and "%" in text)


def find_date(line: str, prefer_day_first: bool) -> str | None:
    for pattern in _DATE_PATTERNS:
        match = pattern.search(line)
        if not match:
            continue
        groups = match.groupdict()
        year = int(groups["y"])
        year = year + 2000 if year < 100 else year
        if groups.get("m"):
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


def clean_name(name: str) -> str:
    name = _LEADING_CODE.sub("", name)
    return re.sub(r"\s{2,}", " ", name).strip(" .:-*\t")


def detect_currency(lines: list[str]) -> str | None:
    counts: Counter[str] = Counter()
    for line in lines:
        amount = parse_amount(line)
        if amount and amount.currency:
            counts[amount.currency] += 1
        counts.update(code for code in _CURRENCY_CODES if re.search(rf"\b{code}\b", line))
        counts.update(code for symbol, code in _CURRENCY_SYMBOLS.items() if symbol in line)
    if counts:
        return max(counts, key=counts.__getitem__)
    if any(re.search(r"total\s+[àa]\s+payer|tva", line, re.I) for line in lines):
        return "EUR"
    return None


def is_rule(text: str) -> bool:
    """A printed rule (``-----``, ``====``)."""
    return bool(_SEPARATOR.match(text))


def label_kind(label: str) -> str:
    """What the text before an amount says the amount is: ``subtotal``, ``total``,
    ``summary`` (a total-like line that sums savings or counts), ``tax``, ``payment`` (cash,
    card, change, terminal lines) or ``item``."""
    if _SUBTOTAL.search(label):
        return "subtotal"
    if _TOTAL.match(label):
        return "summary" if _SUMMARY.search(label) else "total"
    if _TAX.search(label):
        return "tax"
    if _NOT_ITEM.search(label):
        return "payment"
    return "item"


def item_kind(name: str, total: Decimal) -> str:
    """``deposit``, ``discount`` (a negative amount or a discount's words) or ``item``."""
    if _DEPOSIT.search(name):
        return "deposit"
    if total < 0 or _DISCOUNT.search(name):
        return "discount"
    return "item"


def is_name_part(text: str) -> bool:
    """Whether a line without an amount can be the first part of an item's name (not a
    payment, terminal or total line)."""
    return not (_NOT_ITEM.search(text) or _TOTAL.search(text))


def is_header_line(text: str) -> bool:
    """A header line that is never part of an item's name (store, till, phone numbers)."""
    return bool(_HEADER_WORDS.search(text))


def table_tax(text: str) -> Decimal | None:
    """The tax in a VAT table's total row (``Summe 15,21 1,24 16,45``): its middle amount."""
    amounts = _ANY_AMOUNT.findall(text)
    if len(amounts) >= 3 and _TOTAL.match(text):
        found = parse_amount(f"x {amounts[-2]}")
        if found is not None:
            return found.value
    return None
