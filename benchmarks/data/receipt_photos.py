"""Supermarket receipts of four countries, thermal-printed and photographed, with their truth.

The receipt benchmark's second suite (issue 30; the first is :mod:`receipt_data`).
:func:`receipt_truth` prints one receipt of a US, German, UK or French supermarket the way its
till does, line by line, and keeps the truth beside it:

* a store header (name, address, phone, VAT id, opening hours, till and receipt numbers);
* items, with their quantity or weight line above, below or inside the item's line
  (``2 AT 1 FOR 3.99``, ``2 Stk x 0,99``, ``0,99 x 2``, ``0.482 lb @ 2.99 /lb``,
  ``4 x 1,25 €``, ``1,234 kg x 1,99 EUR/kg``), coupons and savings under an item, deposits
  (``Pfand``, ``BOTTLE DEPOSIT``) and bottle returns (``Leergut``, negative);
* totals as each country words them: US ``SUBTOTAL``, sales tax added, ``TOTAL`` /
  ``BALANCE DUE`` / ``12 BALANCE DUE``; DE ``SUMME EUR`` / ``zu zahlen`` / ``Summe``; UK
  ``TOTAL TO PAY`` / ``BALANCE DUE`` with multibuy savings printed after the ``SUBTOTAL``; FR
  ``TOTAL A PAYER`` / ``TOTAL TTC`` with ``REMISE`` lines after the ``SOUS-TOTAL``;
* EU VAT included in the prices, with a summary table (code, rate, net, tax, gross; its
  ``Summe`` / ``TOTAL`` row is not the receipt's total);
* payment: cash tendered and change (``Geg. Bar``, ``Rückgeld``, ``CHANGE DUE``), card
  terminal slips (``Kundenbeleg``, ``Terminal-ID``, ``Trace-Nr``, ``CONTACTLESS``, ``AID``,
  approval codes, the amount again), loyalty points, ``YOU SAVED`` summaries, a German TSE
  block, footers with barcodes (bars and digits), dates and times.

The truth is arithmetically consistent: items, discounts and deposits add up to the subtotal
and total the receipt prints (US tax on top, EU VAT inside; a saving printed after the subtotal
is a discount item with ``after_subtotal``), and every VAT row is net + tax = gross.

:func:`print_roll` renders the lines as a thermal print on a narrow roll (DejaVu Sans Mono,
32-42 characters a line, amounts right-aligned in a price column, faded and uneven density);
:func:`photograph` puts it on a table and takes a phone photo (keystone up to 8 degrees,
rotation, shadow, paper curl, blur, noise, JPEG quality 45-85), :func:`scan` makes a clean
scan instead (one receipt in five). :func:`receipt_photo` does all of it for one seed.

Seeds decide everything: the same seed gives the same truth and the same JPEG bytes.
``seed % 4`` picks the country (US, DE, UK, FR) and ``(seed // 4) % 5 == 2`` a scan, so any 80
consecutive seeds hold 20 receipts of each country, 4 of them scans. Two suites, never mixed:

* development, ``SEEDS`` (``DEVELOPMENT_SEED_BASE`` = 0: seeds 0-79): the parser's rules are
  written and debugged against these;
* held-out, ``HELD_OUT_SEEDS`` (``HELD_OUT_SEED_BASE`` = 50000: seeds 50000-50079): only
  measured (``python -m benchmarks.receipts --suite photos --seed-base held-out``), never
  looked at while writing rules.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

COUNTRIES = ("US", "DE", "UK", "FR")
SCAN_EVERY = 5  # one receipt in five is a clean scan
SUITE_SIZE = 80
DEVELOPMENT_SEED_BASE = 0
HELD_OUT_SEED_BASE = 50_000
SEEDS = range(DEVELOPMENT_SEED_BASE, DEVELOPMENT_SEED_BASE + SUITE_SIZE)
HELD_OUT_SEEDS = range(HELD_OUT_SEED_BASE, HELD_OUT_SEED_BASE + SUITE_SIZE)

CENT = Decimal("0.01")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_REGULAR = FONT_DIR / "DejaVuSansMono.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSansMono-Bold.ttf"
PRINT_FONT_PX = 28  # the print's own resolution; photos and scans rescale it
MAX_SIDE = 4032  # a phone camera's longer side


def suite_seeds(seed_base: int = DEVELOPMENT_SEED_BASE, count: int = SUITE_SIZE) -> list[int]:
    """``count`` consecutive seeds from ``seed_base``: balanced over the countries."""
    return list(range(seed_base, seed_base + count))


def country_of(seed: int) -> str:
    return COUNTRIES[seed % len(COUNTRIES)]


def kind_of(seed: int) -> str:
    """``scan`` for one receipt in five of each country, else ``photo``."""
    return "scan" if (seed // len(COUNTRIES)) % SCAN_EVERY == 2 else "photo"


# --- truth ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthPhotoItem:
    """One line that adds to the total, as printed: a purchase, a discount or a deposit."""

    name: str
    total: Decimal
    kind: str = "item"  # item | discount | deposit (a bottle return is a negative deposit)
    quantity: float = 1.0  # a count, or a weighed item's weight
    unit_price: Decimal | None = None  # printed on a quantity or weight line
    unit: str | None = None  # kg | lb for weighed items
    tax_rate: Decimal = Decimal(0)  # percent: added to the subtotal (US), included (EU)
    after_subtotal: bool = False  # printed below the subtotal, taken off it


@dataclass(frozen=True)
class VatRow:
    """One rate of an EU receipt's VAT summary."""

    code: str
    rate: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True)
class PrintedLine:
    """One line as the till prints it: monospace, at most the roll's columns."""

    text: str
    size: str = "normal"  # normal | tall (double height) | wide (double width and height)
    bold: bool = False
    barcode: bool = False  # bars printed above the digits in ``text``


@dataclass
class TruthPhotoReceipt:
    """A receipt's truth and its printed lines."""

    seed: int
    country: str  # US | DE | UK | FR
    kind: str  # photo | scan
    merchant: str
    date: str  # ISO 8601
    currency: str
    items: list[TruthPhotoItem]
    subtotal: Decimal | None  # as printed; None where the receipt prints none
    tax: Decimal | None  # added (US) or the VAT table's tax (EU); None where none is printed
    total: Decimal
    tax_included: bool
    vat: list[VatRow]
    columns: int  # characters a line
    lines: list[PrintedLine] = field(default_factory=list)

    @property
    def text_lines(self) -> list[str]:
        """The printed text, one entry per non-empty line (what a perfect OCR would read)."""
        return [" ".join(line.text.split()) for line in self.lines if line.text.strip()]


# --- what the countries sell and how they print it --------------------------------------------


@dataclass(frozen=True)
class Convention:
    """How a country's tills print money and weights, and whether prices include tax."""

    currency: str
    symbol: str
    comma: bool  # 1,99 rather than 1.99
    weight_unit: str
    tax_included: bool
    food_rate: Decimal
    standard_rate: Decimal  # US: drawn per store (state sales tax)


CONVENTIONS = {
    "US": Convention("USD", "$", False, "lb", False, Decimal(0), Decimal(0)),
    "DE": Convention("EUR", "€", True, "kg", True, Decimal(7), Decimal(19)),
    "UK": Convention("GBP", "£", False, "kg", True, Decimal(0), Decimal(20)),
    "FR": Convention("EUR", "€", True, "kg", True, Decimal("5.5"), Decimal(20)),
}
US_SALES_TAX = ["6.000", "6.250", "7.000", "8.250", "8.875", "9.500"]


@dataclass(frozen=True)
class Product:
    """Something a store sells: per piece, or weighed (``per`` kg or lb)."""

    name: str
    price: Decimal
    standard: bool = False  # taxed at the standard rate (non-food, most drinks)
    per: str | None = None
    deposit: Decimal | None = None  # per bottle or pack


def _catalogue(rows: list[tuple]) -> list[Product]:
    """Products from (name, price[, standard[, per[, deposit]]]) rows."""
    products = []
    for name, price, *rest in rows:
        standard, per, deposit = (*rest, False, None, None)[:3]
        products.append(
            Product(name, Decimal(price), standard, per, Decimal(deposit) if deposit else None)
        )
    return products


PRODUCTS = {
    "US": _catalogue(
        [
            ("GV 2% MILK GAL", "3.48"),
            ("LARGE EGGS 12CT", "2.98"),
            ("WHITE BREAD 20OZ", "1.98"),
            ("HONEY NUT CHEERIOS", "4.98"),
            ("CREAMY PEANUT BTR", "2.48"),
            ("SHARP CHEDDAR 8OZ", "2.50"),
            ("ORANGE JUICE 52OZ", "3.78"),
            ("GREEK YOGURT 32OZ", "5.48"),
            ("FROZEN PIZZA PEPP", "4.48"),
            ("TORTILLA CHIPS", "3.28"),
            ("GROUND COFFEE 12OZ", "7.48"),
            ("SALTED BUTTER 1LB", "4.28"),
            ("SPAGHETTI 16OZ", "1.28"),
            ("MARINARA SAUCE 24OZ", "2.98"),
            ("BLACK BEANS 15OZ", "0.88"),
            ("AVOCADO HASS", "0.98"),
            ("BABY CARROTS 1LB", "1.48"),
            ("ROTISSERIE CHICKEN", "4.98"),
            ("PAPER TOWELS 6PK", "8.97", True),
            ("DISH SOAP 19OZ", "2.97", True),
            ("TRASH BAGS 40CT", "7.97", True),
            ("COLA 12PK CANS", "6.98", True, None, "0.60"),
            ("SPARKLING WATER 8PK", "4.98", True, None, "0.40"),
            ("LAUNDRY DETERGENT", "11.97", True),
            ("TOOTHPASTE 4OZ", "3.47", True),
            ("BANANAS", "0.59", False, "lb"),
            ("GALA APPLES", "1.49", False, "lb"),
            ("ROMA TOMATOES", "1.29", False, "lb"),
            ("RED SEEDLESS GRAPES", "2.49", False, "lb"),
            ("YELLOW ONIONS", "0.99", False, "lb"),
            ("CHICKEN BREAST BNLS", "3.97", False, "lb"),
            ("GROUND BEEF 80/20", "4.99", False, "lb"),
        ]
    ),
    "DE": _catalogue(
        [
            ("Vollmilch 3,5% 1L", "1.09"),
            ("Butter 250g", "2.29"),
            ("Roggenmischbrot 750g", "2.49"),
            ("Gouda jung Scheiben", "1.79"),
            ("Joghurt Natur 500g", "0.89"),
            ("Spaghetti 500g", "0.99"),
            ("Eier Freiland 10er", "2.99"),
            ("Haferflocken 500g", "0.89"),
            ("Frischkäse 200g", "1.19"),
            ("Salatgurke", "0.69"),
            ("Kartoffeln 2kg", "2.49"),
            ("Kaffee Crema 1kg", "12.99"),
            ("Bio Karotten 1kg", "1.49"),
            ("Tiefkühlpizza Salami", "2.79"),
            ("Apfelschorle 1L", "0.89", True, None, "0.25"),
            ("Mineralwasser 1,5L", "0.29", True, None, "0.25"),
            ("Pils 0,5L", "0.79", True, None, "0.08"),
            ("Cola 1,25L", "1.29", True, None, "0.25"),
            ("Spülmittel 500ml", "1.45", True),
            ("Toilettenpapier 8x", "3.95", True),
            ("Zahnpasta 75ml", "1.75", True),
            ("Bananen", "1.99", False, "kg"),
            ("Tomaten Rispe", "2.99", False, "kg"),
            ("Äpfel Elstar", "2.49", False, "kg"),
            ("Hähnchenbrust", "11.90", False, "kg"),
            ("Paprika rot", "4.99", False, "kg"),
            ("Weintrauben hell", "3.99", False, "kg"),
        ]
    ),
    "UK": _catalogue(
        [
            ("SEMI SKIMMED MILK 4PT", "1.45"),
            ("WHITE BREAD 800G", "1.40"),
            ("FREE RANGE EGGS 6PK", "1.75"),
            ("MATURE CHEDDAR 400G", "3.25"),
            ("BAKED BEANS 415G", "0.85"),
            ("BRITISH BUTTER 250G", "2.15"),
            ("TEA BAGS 80S", "2.75"),
            ("CRUMPETS 6PK", "0.85"),
            ("CHICKEN THIGHS 1KG", "3.90"),
            ("BROCCOLI", "0.59"),
            ("MUSHROOMS 300G", "0.99"),
            ("PORRIDGE OATS 1KG", "1.65"),
            ("SALTED CRISPS 6PK", "1.50", True),
            ("ORANGE SQUASH 1L", "1.10", True),
            ("MILK CHOCOLATE 100G", "1.25", True),
            ("WASHING UP LIQUID", "1.10", True),
            ("TOILET ROLL 9PK", "4.50", True),
            ("SPARKLING WATER 2L", "0.70", True),
            ("LOOSE BANANAS", "0.78", False, "kg"),
            ("LOOSE CARROTS", "0.60", False, "kg"),
            ("BRAMLEY APPLES", "1.80", False, "kg"),
            ("RED ONIONS LOOSE", "1.20", False, "kg"),
            ("VINE TOMATOES", "2.90", False, "kg"),
        ]
    ),
    "FR": _catalogue(
        [
            ("LAIT DEMI ECREME 1L", "0.95"),
            ("BAGUETTE TRADITION", "1.10"),
            ("BEURRE DOUX 250G", "2.35"),
            ("EMMENTAL RAPE 200G", "1.89"),
            ("YAOURT NATURE X8", "1.65"),
            ("CAMEMBERT 250G", "2.10"),
            ("JAMBON BLANC X4", "2.99"),
            ("CROISSANTS X6", "2.40"),
            ("CAFE MOULU 250G", "3.15"),
            ("HUILE OLIVE VIERGE 1L", "8.99"),
            ("PATES FUSILLI 500G", "0.99"),
            ("EAU MINERALE 6X1,5L", "2.16"),
            ("COMPOTE POMME X4", "1.79"),
            ("VIN ROUGE BORDEAUX", "5.49", True),
            ("LESSIVE LIQUIDE 2L", "7.99", True),
            ("PAPIER TOILETTE X12", "4.85", True),
            ("GEL DOUCHE 250ML", "1.95", True),
            ("POMMES GOLDEN", "2.49", False, "kg"),
            ("TOMATES GRAPPE", "3.49", False, "kg"),
            ("CAROTTES VRAC", "1.29", False, "kg"),
            ("BANANES", "1.99", False, "kg"),
            ("RAISIN BLANC", "4.50", False, "kg"),
        ]
    ),
}

MERCHANTS = {
    "US": ["MAPLE MARKET", "SUNNYVALE FOODS", "GREENWAY GROCERY", "BAYSIDE SUPERMARKET",
           "HILLTOP FRESH", "PRAIRIE FOODS"],
    "DE": ["FRISCHMARKT HOFFMANN", "NORDKAUF", "GRÜNER KORB", "MARKTKAUF WEBER",
           "KAUFHAUS EICHE"],
    "UK": ["GREENS FOOD HALL", "HARTLEYS", "BRIDGEWAY", "THE PANTRY CO-OP", "MARKET & MORE"],
    "FR": ["MARCHE PLUS", "SUPER PRIMEUR", "EPICERIE DU PARC", "HYPER SOLEIL",
           "LES HALLES GOURMANDES"],
}  # fmt: skip
TOWNS = {
    "US": [("SPRINGFIELD", "IL 62704", "217"), ("MADISON", "WI 53703", "608"),
           ("AUSTIN", "TX 78701", "512"), ("PORTLAND", "OR 97205", "503"),
           ("ALBANY", "NY 12207", "518")],
    "DE": [("Berlin", "10115", "030"), ("Köln", "50667", "0221"), ("München", "80331", "089"),
           ("Hamburg", "20095", "040"), ("Leipzig", "04109", "0341")],
    "UK": [("London", "N1 1QP", "020"), ("Leeds", "LS1 4AP", "0113"),
           ("Bristol", "BS1 3XE", "0117"), ("York", "YO1 7HH", "01904"),
           ("Manchester", "M1 1AD", "0161")],
    "FR": [("LYON", "69002", "04"), ("PARIS", "75011", "01"), ("BORDEAUX", "33000", "05"),
           ("MARSEILLE", "13001", "04"), ("NANTES", "44000", "02")],
}  # fmt: skip
STREETS = {
    "US": ["W MAIN ST", "N BROADWAY", "OAK AVE", "LINCOLN HWY", "MARKET ST"],
    "DE": ["Hauptstraße", "Bahnhofstr.", "Marktplatz", "Lindenallee", "Goethestraße"],
    "UK": ["High Street", "Station Road", "Church Lane", "Market Place", "London Road"],
    "FR": ["RUE DE LA REPUBLIQUE", "AVENUE JEAN JAURES", "BD VOLTAIRE", "PLACE DU MARCHE",
           "RUE VICTOR HUGO"],
}  # fmt: skip
SAVINGS_UNDER_ITEM = {
    "US": ["MEMBER SAVINGS", "MFR COUPON", "STORE COUPON", "SC SAVINGS"],
    "DE": ["Rabatt", "Preisvorteil", "Aktionsrabatt", "Coupon"],
    "UK": ["MEMBER PRICE SAVING", "PRICE CUT", "REDUCED TO CLEAR"],
    "FR": ["REMISE IMMEDIATE", "PROMO", "BON DE REDUCTION"],
}
DEPOSIT_NAMES = {
    "US": ["BOTTLE DEPOSIT", "BTL DEP", "CAN DEPOSIT"],
    "DE": ["Pfand", "PFAND", "Pfand Einweg"],
}
PLACEMENTS = ("above", "below", "inline", "split")


@dataclass(frozen=True)
class Layout:
    """One store's printing habits, drawn per receipt."""

    columns: int
    quantity_at: str  # above | below | inline | split: where "2 x 0,99" goes
    weight_at: str
    indent: int  # of quantity and weight lines
    codes: tuple[str, str] | None  # tax codes (food, standard) after each amount
    item_symbol: bool  # the currency symbol on item amounts
    trailing_minus: bool  # "1.00-" rather than "-1.00"
    upper: bool  # names in capitals
    price_first: bool  # "0,99 x 2" rather than "2 x 0,99"
    variant: int  # which of the country's wordings for quantity and weight lines
    weight_places: int


def _layout(rng: random.Random, country: str) -> Layout:
    codes = {
        "US": [("F", "T"), ("N", "T"), ("N", "X"), None],
        "DE": [("B", "A"), ("B", "A"), ("B", "A"), None],
        "UK": [None, None, ("Z", "S")],
        "FR": [None, ("1", "2"), ("A", "B")],
    }[country]
    symbol = {"US": 0.2, "DE": 0.0, "UK": 0.6, "FR": 0.5}[country]
    return Layout(
        columns=rng.randint(32, 42),
        quantity_at=rng.choice(PLACEMENTS),
        weight_at=rng.choice(PLACEMENTS),
        indent=rng.choice([0, 2, 2, 3, 4]),
        codes=rng.choice(codes),
        item_symbol=rng.random() < symbol,
        trailing_minus=country == "US" and rng.random() < 0.5,
        upper=country in ("US", "UK", "FR") or rng.random() < 0.5,
        price_first=country == "DE" and rng.random() < 0.35,
        variant=rng.randrange(3),
        weight_places=2 if country == "US" and rng.random() < 0.4 else 3,
    )


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- the till ---------------------------------------------------------------------------------


class _Till:
    """Prints one receipt line by line and keeps the truth of what adds up."""

    def __init__(self, country: str, layout: Layout, sales_tax: Decimal):
        self.country = country
        self.conv = CONVENTIONS[country]
        self.layout = layout
        self.standard_rate = sales_tax if country == "US" else self.conv.standard_rate
        self.lines: list[PrintedLine] = []
        self.items: list[TruthPhotoItem] = []

    # money and text

    def number(self, value: Decimal, places: int = 2) -> str:
        text = f"{abs(value):.{places}f}"
        return text.replace(".", ",") if self.conv.comma else text

    def money(self, value: Decimal, symbol: bool = False) -> str:
        """An amount as this till prints it: ``-1,99``, ``1.00-``, ``£1.45``, ``1,99 €``."""
        text = self.number(value)
        if symbol:
            text = f"{self.conv.symbol}{text}" if self.conv.symbol in "$£" else f"{text} €"
        if value < 0:
            return f"{text}-" if self.layout.trailing_minus else f"-{text}"
        return text

    def code(self, standard: bool) -> str:
        return self.layout.codes[int(standard)] if self.layout.codes else ""

    def width(self, size: str = "normal") -> int:
        return self.layout.columns // 2 if size == "wide" else self.layout.columns

    def tail(self, right: str, code: str) -> str:
        """The price column: the amount, then the tax code column (blank on totals)."""
        if not self.layout.codes:
            return right
        return f"{right} {code}".ljust(len(right) + 1 + max(map(len, self.layout.codes)))

    def room(self, right: str, code: str = "", size: str = "normal") -> int:
        return self.width(size) - len(self.tail(right, code)) - 1

    # printing

    def line(
        self, text: str = "", *, size: str = "normal", bold: bool = False, center: bool = False
    ) -> None:
        width = self.width(size)
        text = text[:width]
        self.lines.append(PrintedLine(text.center(width).rstrip() if center else text, size, bold))

    def rule(self, char: str = "-") -> None:
        self.line(char * self.layout.columns)

    def barcode(self, digits: str) -> None:
        self.lines.append(PrintedLine(digits.center(self.layout.columns).rstrip(), barcode=True))

    def row(
        self, left: str, right: str, code: str = "", *, size: str = "normal", bold: bool = False
    ) -> None:
        """``left`` at the margin, ``right`` in the price column."""
        tail = self.tail(right, code)
        width = self.width(size)
        left = left[: max(0, width - len(tail) - 1)]
        self.lines.append(PrintedLine(left.ljust(width - len(tail)) + tail, size, bold))

    # what adds up

    def buy(
        self,
        product: Product,
        count: int = 1,
        weight: Decimal | None = None,
        deal: Decimal | None = None,
        kind: str = "item",
    ) -> TruthPhotoItem:
        """Print a purchase (or a deposit) with its quantity or weight line; its truth."""
        layout = self.layout
        name = product.name.upper() if layout.upper else product.name
        rate = self.standard_rate if product.standard else self.conv.food_rate
        code = self.code(product.standard)
        unit = unit_price = detail = placement = None
        quantity = Decimal(count)
        if weight is not None:
            quantity, unit_price, unit = weight, product.price, self.conv.weight_unit
            total = cents(weight * product.price)
            detail, placement = self.weight_text(weight, product.price), layout.weight_at
        elif count > 1:
            unit_price = product.price if deal is None else deal / count
            total = deal if deal is not None else unit_price * count
            detail, placement = self.count_text(count, unit_price, deal), layout.quantity_at
        else:
            total = product.price
        amount = self.money(total, layout.item_symbol)
        indent = " " * layout.indent
        room = self.room(amount, code)
        if placement == "inline" and detail and room - len(detail) - 2 < 10:
            placement = "below"  # no room beside a name of ten characters
        if placement == "inline" and detail:
            printed = name[: room - len(detail) - 2].rstrip()
            self.row(printed.ljust(room - len(detail)) + detail, amount, code)
        elif placement == "split" and detail:
            printed = name[: self.layout.columns].rstrip()
            self.line(printed)
            self.row(indent + detail, amount, code)
        else:
            printed = name[:room].rstrip()
            if placement == "above" and detail:
                self.line(indent + detail)
            self.row(printed, amount, code)
            if placement == "below" and detail:
                self.line(indent + detail)
        item = TruthPhotoItem(printed, total, kind, float(quantity), unit_price, unit, rate)
        self.items.append(item)
        return item

    def count_text(self, count: int, price: Decimal, deal: Decimal | None) -> str:
        """``2 AT 1 FOR 3.99``, ``2 Stk x 0,99``, ``0,99 x 2``, ``2 x £1.25``, ``4 x 1,25 €``."""
        p = self.money(price, self.layout.item_symbol and self.country != "US")
        if deal is not None:
            d = self.number(deal)
            return [
                f"{count} @ {count} FOR {d}",
                f"{count} AT {count} FOR {d}",
                f"{count} @ {count}/{d}",
            ][self.layout.variant]
        if self.layout.price_first:
            return f"{p} x {count}"
        forms = {
            "US": [f"{count} @ {p}", f"{count} AT 1 FOR {p}", f"{count} @ {p} EA"],
            "DE": [f"{count} Stk x {p}", f"{count} x {p}", f"{count} Stk x {p} EUR"],
            "UK": [
                f"{count} x £{self.number(price)}",
                f"{count} @ £{self.number(price)}",
                f"{count} x {self.number(price)}",
            ],
            "FR": [
                f"{count} x {self.number(price)} €",
                f"{count} X {self.number(price)}",
                f"{count} x {self.number(price)} EUR",
            ],
        }
        return forms[self.country][self.layout.variant]

    def weight_text(self, weight: Decimal, price: Decimal) -> str:
        """``0.482 lb @ 2.99 /lb``, ``1,234 kg x 1,99 EUR/kg``, ``0.482 kg @ £0.78/kg``."""
        w, p = self.number(weight, self.layout.weight_places), self.number(price)
        forms = {
            "US": [f"{w} lb @ {p} /lb", f"{w} lb @ ${p}/lb", f"WT {w} lb @ {p} /lb"],
            "DE": [f"{w} kg x {p} EUR/kg", f"{w} kg * {p} EUR/kg", f"{w}kg x {p} EUR/kg"],
            "UK": [f"{w} kg @ £{p}/kg", f"{w}kg @ £{p} /kg", f"{w} kg @ {p} £/kg"],
            "FR": [f"{w} kg x {p} €/kg", f"{w}kg x {p} EUR/kg", f"{w} kg x {p} €/kg"],
        }
        return forms[self.country][self.layout.variant]

    def discount(
        self,
        label: str,
        amount: Decimal,
        rate: Decimal,
        *,
        indent: int = 0,
        after_subtotal: bool = False,
        symbol: bool | None = None,
    ) -> None:
        """A saving (``amount`` > 0 taken off), printed negative."""
        text = self.money(-amount, self.layout.item_symbol if symbol is None else symbol)
        code = "" if after_subtotal else self.code(rate == self.standard_rate and rate > 0)
        printed = label[: self.room(text, code) - indent].rstrip()
        self.row(" " * indent + printed, text, code)
        self.items.append(
            TruthPhotoItem(
                printed, -amount, "discount", tax_rate=rate, after_subtotal=after_subtotal
            )
        )

    def bottle_return(self, label: str, amount: Decimal) -> None:
        """Empties brought back (``Leergut``): a negative deposit at the standard rate."""
        text = self.money(-amount)
        code = self.code(True)
        printed = label[: self.room(text, code)].rstrip()
        self.row(printed, text, code)
        self.items.append(TruthPhotoItem(printed, -amount, "deposit", tax_rate=self.standard_rate))

    def shop(self, rng: random.Random) -> None:
        """The purchases: 4-14 products, some counted or weighed, with savings and deposits."""
        catalogue = PRODUCTS[self.country]
        savings = SAVINGS_UNDER_ITEM[self.country]
        deposit_names = DEPOSIT_NAMES.get(self.country)
        deposit_name = rng.choice(deposit_names) if deposit_names else None
        saving_indent = rng.choice([0, 0, 2])
        for product in rng.sample(catalogue, k=rng.randint(4, 14)):
            count = 1
            if product.per:
                scale = 10**self.layout.weight_places
                high = 4.0 if product.per == "lb" else 2.5
                weight = Decimal(rng.randint(int(0.15 * scale), int(high * scale))) / scale
                item = self.buy(product, weight=weight)
            else:
                if rng.random() < 0.3:
                    count = rng.choice([2, 2, 2, 3, 4, 6])
                deal = None
                each = (product.price * Decimal("3.6")).to_integral_value(ROUND_FLOOR) / 4
                if self.country == "US" and count > 1 and each and rng.random() < 0.35:
                    deal = each * count  # "2 @ 2 FOR 5.00": quarters, about 10% off
                item = self.buy(product, count=count, deal=deal)
            if product.deposit is not None and deposit_name and rng.random() < 0.85:
                deposit = Product(deposit_name, product.deposit, self.country == "DE")
                self.buy(deposit, count=count, kind="deposit")
            if rng.random() < 0.12 and item.total > Decimal("0.50"):
                off = min(item.total - Decimal("0.20"), Decimal(rng.randint(20, 150)) / 100)
                self.discount(rng.choice(savings), off, item.tax_rate, indent=saving_indent)

    def sum(self, after_subtotal: bool | None = None) -> Decimal:
        return sum(
            (i.total for i in self.items if after_subtotal in (None, i.after_subtotal)),
            Decimal(0),
        )

    def main_rate(self) -> Decimal:
        """The tax rate with the most on it: where a receipt-wide saving is booked."""
        rates = {i.tax_rate for i in self.items}
        return max(rates, key=lambda r: sum(i.total for i in self.items if i.tax_rate == r))

    def item_count(self) -> int:
        return sum(1 if i.unit else int(i.quantity) for i in self.items if i.kind == "item")

    def vat_rows(self, codes: dict[Decimal, str]) -> list[VatRow]:
        """Gross per rate from the items, net = gross / (1 + rate), tax = gross - net."""
        gross: dict[Decimal, Decimal] = {}
        for item in self.items:
            gross[item.tax_rate] = gross.get(item.tax_rate, Decimal(0)) + item.total
        rows = []
        for rate in sorted(gross, reverse=True):
            net = cents(gross[rate] * 100 / (100 + rate))
            rows.append(VatRow(codes[rate], rate, net, gross[rate] - net, gross[rate]))
        return rows

    def vat_table(
        self,
        rows: list[VatRow],
        header: tuple[str, str, str, str],
        label: Callable[[VatRow], str],
        sum_label: str | None,
    ) -> None:
        """The VAT summary: rate, net, tax, gross, and a sum row that is not the total."""
        labels = [label(r) for r in rows] + ([sum_label] if sum_label else [])
        first = max(len(header[0]), *map(len, labels)) + 1
        column = (self.layout.columns - first) // 3

        def table_row(left: str, cells: list[str]) -> None:
            self.line(left.ljust(first) + "".join(c.rjust(column) for c in cells))

        table_row(header[0], list(header[1:]))
        for row in rows:
            table_row(
                label(row), [self.number(row.net), self.number(row.tax), self.number(row.gross)]
            )
        if sum_label:
            net, tax = sum(r.net for r in rows), sum(r.tax for r in rows)
            gross = sum(r.gross for r in rows)
            table_row(sum_label, [self.number(net), self.number(tax), self.number(gross)])


@dataclass
class _Totals:
    merchant: str
    when: datetime
    subtotal: Decimal | None
    tax: Decimal | None
    total: Decimal
    vat: list[VatRow] = field(default_factory=list)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(count))


def _hex(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789ABCDEF") for _ in range(count))


def _cash_given(rng: random.Random, total: Decimal) -> Decimal:
    notes = [Decimal(n) for n in (5, 10, 20, 50, 100) if n >= total]
    whole = total.to_integral_value(rounding=ROUND_CEILING)
    return rng.choice([*notes[:2], whole]) if notes else whole


def _title(till: _Till, merchant: str) -> None:
    if len(merchant) <= till.width("wide"):
        till.line(merchant, size="wide", bold=True, center=True)
    else:
        till.line(merchant, size="tall", bold=True, center=True)


def _aid(brand: str) -> str:
    return {
        "VISA": "A0000000031010",
        "MASTERCARD": "A0000000041010",
        "DEBIT": "A0000000980840",
        "AMEX": "A00000002501",
    }.get(brand, "A0000000031010")


# --- the four countries -----------------------------------------------------------------------


def _us(till: _Till, rng: random.Random, when: datetime) -> _Totals:
    merchant = rng.choice(MERCHANTS["US"])
    town, state_zip, area = rng.choice(TOWNS["US"])
    store = rng.randint(100, 9999)
    _title(till, merchant)
    if rng.random() < 0.5:
        till.line(f"Store #{store:04d}", center=True)
    till.line(f"{rng.randint(100, 9999)} {rng.choice(STREETS['US'])}", center=True)
    till.line(f"{town}, {state_zip}", center=True)
    till.line(f"({area}) 555-{rng.randint(100, 199):04d}", center=True)
    if rng.random() < 0.5:
        till.line(
            rng.choice(["OPEN DAILY 6AM-11PM", "OPEN 24 HOURS", "HOURS 7AM - 10PM"]), center=True
        )
    till.line(
        f"ST# {store:04d} OP# {rng.randint(1, 999):06d} TE# {rng.randint(1, 40):02d} "
        f"TR# {rng.randint(1, 99999):05d}"
    )
    if rng.random() < 0.5:
        till.line(when.strftime("%m/%d/%y %H:%M:%S"))
    till.line()
    till.shop(rng)
    subtotal = till.sum()
    taxable = sum((i.total for i in till.items if i.tax_rate), Decimal(0))
    tax = cents(taxable * till.standard_rate / 100)
    total = subtotal + tax
    count = till.item_count()
    till.line()
    till.row(rng.choice(["SUBTOTAL", "SUB TOTAL", "SUBTOTAL"]), till.money(subtotal))
    rate = f"{till.standard_rate:.3f}"
    tax_label = rng.choice([f"TAX 1 {rate} %", f"SALES TAX {rate}%", "TAX", f"TX {rate[:-1]}%"])
    till.row(tax_label, till.money(tax))
    total_label = rng.choice(["TOTAL", "BALANCE DUE", f"{count} BALANCE DUE", "**** BALANCE"])
    till.row(
        total_label,
        till.money(total, rng.random() < 0.5),
        bold=True,
        size="tall" if rng.random() < 0.3 else "normal",
    )
    till.line()
    if rng.random() < 0.35:
        given = _cash_given(rng, total)
        till.row("CASH TEND", till.money(given))
        till.row(rng.choice(["CHANGE DUE", "CHANGE"]), till.money(given - total))
    else:
        brand = rng.choice(["VISA", "MASTERCARD", "DEBIT", "AMEX"])
        till.row(f"{brand} TEND", till.money(total))
        till.row("CHANGE DUE", till.money(Decimal(0)))
        till.line()
        till.line(f"{brand}  ************{_digits(rng, 4)}")
        if rng.random() < 0.6:
            till.line("CONTACTLESS")
        till.line(f"APPROVAL # {_hex(rng, 6)}")
        till.line(f"REF # {_digits(rng, 12)}")
        till.line(f"AID {_aid(brand)}")
        till.line(f"TC {_hex(rng, 16)}")
        till.line(f"TERMINAL # SC{_digits(rng, 6)}")
        if rng.random() < 0.5:
            till.line("*NO SIGNATURE REQUIRED")
    till.line(f"# ITEMS SOLD {count}")
    savings = -sum((i.total for i in till.items if i.kind == "discount"), Decimal(0))
    if savings and rng.random() < 0.8:
        till.line()
        wording = rng.choice(["YOU SAVED", "TOTAL SAVINGS", "TODAY'S SAVINGS"])
        till.row(wording, till.money(savings, rng.random() < 0.5), bold=True)
    if rng.random() < 0.6:
        till.line(f"REWARDS MEMBER ****{_digits(rng, 4)}")
        till.line(f"POINTS EARNED TODAY {int(total)}")
        till.line(f"POINTS BALANCE {rng.randint(100, 9000)}")
    till.line()
    till.line(when.strftime("%m/%d/%y %H:%M:%S") + f"  TC# {_digits(rng, 4)}", center=True)
    till.barcode(_digits(rng, 20))
    till.line(rng.choice(["THANK YOU FOR SHOPPING", "THANK YOU! COME AGAIN"]), center=True)
    if rng.random() < 0.5:
        till.line("TELL US ABOUT YOUR VISIT", center=True)
        till.line(f"SURVEY ID # {_hex(rng, 4)}-{_hex(rng, 4)}-{_hex(rng, 4)}", center=True)
    return _Totals(merchant, when, subtotal, tax, total)


def _de(till: _Till, rng: random.Random, when: datetime) -> _Totals:
    merchant = rng.choice(MERCHANTS["DE"])
    town, postcode, area = rng.choice(TOWNS["DE"])
    _title(till, merchant)
    till.line(f"{rng.choice(STREETS['DE'])} {rng.randint(1, 120)}", center=True)
    till.line(f"{postcode} {town}", center=True)
    till.line(f"Tel. {area} / {_digits(rng, 7)}", center=True)
    vat_id = f"DE{_digits(rng, 9)}"
    till.line(
        rng.choice([f"USt-IdNr {vat_id}", f"UID Nr.: {vat_id}", f"USt-ID: {vat_id}"]), center=True
    )
    if rng.random() < 0.5:
        till.line("Öffnungszeiten: Mo-Sa 7-22 Uhr", center=True)
    till.line()
    if rng.random() < 0.5:
        till.row("", "EUR")
    leergut_first = rng.random() < 0.15
    if leergut_first:
        till.bottle_return(
            rng.choice(["Leergut", "LEERGUT", "Leergut Einweg"]),
            Decimal(rng.choice([25, 50, 75, 100, 150, 200])) / 100,
        )
    till.shop(rng)
    if not leergut_first and rng.random() < 0.2:
        till.bottle_return(
            rng.choice(["Leergut", "LEERGUT", "Pfandbon"]),
            Decimal(rng.choice([25, 50, 75, 100, 150, 200])) / 100,
        )
    total = till.sum()
    till.rule()
    wording = rng.choice(["SUMME EUR", "SUMME", "zu zahlen", "Summe"])
    wide = rng.random() < 0.4
    till.row(wording, till.money(total), size="wide" if wide else "normal", bold=True)
    till.rule("=")
    card = rng.random() < 0.6
    if card:
        till.row(
            rng.choice(["Geg. girocard", "Kartenzahlung", "Geg. Kreditkarte", "EC-Cash"]),
            f"EUR {till.money(total)}",
        )
    else:
        given = _cash_given(rng, total)
        till.row(rng.choice(["Geg. Bar", "Gegeben BAR", "Bar"]), f"EUR {till.money(given)}")
        till.row(rng.choice(["Rückgeld", "Rückgeld BAR"]), f"EUR {till.money(given - total)}")
    till.line()
    rows = till.vat_rows({Decimal(19): "A", Decimal(7): "B"})
    header = rng.choice(
        [("MwSt", "Netto", "MwSt", "Brutto"), ("Steuer %", "Netto", "Steuer", "Brutto")]
    )
    till.vat_table(
        rows,
        header,
        lambda r: f"{r.code}= {till.number(r.rate, 1)}%",
        rng.choice(["Summe", "Gesamt", "Gesamtbetrag"]),
    )
    till.line()
    if card:
        till.line("*" * till.layout.columns)
        till.line("Kundenbeleg", center=True)
        till.line("Kartenzahlung", center=True)
        till.line(rng.choice(["girocard", "VISA", "Mastercard"]), center=True)
        till.line(when.strftime("Datum: %d.%m.%Y  Uhrzeit: %H:%M"))
        till.line(f"Terminal-ID: {_digits(rng, 8)}")
        till.line(f"TA-Nr.: {_digits(rng, 6)}  BNr: {_digits(rng, 4)}")
        till.line(f"Trace-Nr.: {_digits(rng, 6)}")
        till.line(f"Karte: {rng.choice(['girocard', 'Debit'])} kontaktlos")
        till.line(f"Karten-Nr: ############{_digits(rng, 4)}")
        till.line(f"EMV-AID: A0000000{_digits(rng, 6)}")
        till.row("Betrag EUR", till.money(total))
        till.line("Zahlung erfolgt", center=True)
        till.line("*" * till.layout.columns)
    if rng.random() < 0.5:
        till.line(f"PAYBACK Karten-Nr: #######{_digits(rng, 4)}")
        till.line(f"Mit diesem Einkauf {int(total / 2)} Punkte gesammelt")
    savings = -sum((i.total for i in till.items if i.kind == "discount"), Decimal(0))
    if savings and rng.random() < 0.7:
        till.line(f"Sie haben {till.money(savings)} EUR gespart!", center=True)
    till.line()
    till.line(when.strftime("%d.%m.%Y %H:%M") + f"  Bon {rng.randint(1000, 9999)}")
    till.line(
        f"Markt {rng.randint(1000, 9999)}  Kasse {rng.randint(1, 12)}  Bed. {rng.randint(100, 999)}"
    )
    if rng.random() < 0.6:
        till.line(f"TSE-Transaktion: {rng.randint(10000, 999999)}")
        till.line(f"TSE-Start: {when:%Y-%m-%dT%H:%M:%S}.000")
        till.line(f"TSE-Signatur: {_hex(rng, till.layout.columns - 14)}")
    till.barcode(_digits(rng, 13))
    till.line(
        rng.choice(["Vielen Dank für Ihren Einkauf", "Vielen Dank und bis bald!"]), center=True
    )
    return _Totals(merchant, when, None, sum(r.tax for r in rows), total, rows)


def _uk(till: _Till, rng: random.Random, when: datetime) -> _Totals:
    merchant = rng.choice(MERCHANTS["UK"])
    town, postcode, area = rng.choice(TOWNS["UK"])
    _title(till, merchant)
    till.line(f"{rng.randint(1, 250)} {rng.choice(STREETS['UK'])}", center=True)
    till.line(f"{town} {postcode}", center=True)
    till.line(f"Tel: {area} {_digits(rng, 3)} {_digits(rng, 4)}", center=True)
    till.line(f"VAT No GB {_digits(rng, 3)} {_digits(rng, 4)} {_digits(rng, 2)}", center=True)
    if rng.random() < 0.5:
        till.line("Open 7am-10pm Mon-Sat", center=True)
    till.line()
    till.shop(rng)
    subtotal = till.sum()
    promotions = rng.random() < 0.55
    symbol = rng.random() < 0.7
    if promotions:
        till.rule()
        till.row("SUBTOTAL", till.money(subtotal, symbol))
        till.line(rng.choice(["Promotions", "SAVINGS", "Multibuy savings"]))
        multi = [i for i in till.items if i.kind == "item" and i.quantity >= 2 and not i.unit]
        for item in multi[:2]:
            deal = (item.total * Decimal("0.8") * 2).to_integral_value(ROUND_FLOOR) / 2
            if Decimal(1) <= deal < item.total:
                label = f"ANY {int(item.quantity)} FOR £{deal:.2f}"
                till.discount(
                    label,
                    item.total - deal,
                    item.tax_rate,
                    indent=1,
                    after_subtotal=True,
                    symbol=symbol,
                )
        if rng.random() < 0.6 or not multi:
            amount = min(Decimal(rng.randint(50, 200)) / 100, cents(subtotal / 5))
            till.discount(
                rng.choice(["MEAL DEAL SAVING", "MEMBER PRICE SAVINGS"]),
                amount,
                till.main_rate(),
                indent=1,
                after_subtotal=True,
                symbol=symbol,
            )
        saved = -till.sum(after_subtotal=True)
        if rng.random() < 0.5:
            till.row("TOTAL SAVINGS", till.money(-saved, symbol))
    total = till.sum()
    till.rule()
    wording = rng.choice(
        ["TOTAL TO PAY", "BALANCE DUE", f"{till.item_count()} BALANCE DUE", "TOTAL"]
    )
    till.row(wording, till.money(total, symbol), bold=True)
    till.line()
    if rng.random() < 0.3:
        given = _cash_given(rng, total)
        till.row("CASH", till.money(given, symbol))
        till.row("CHANGE DUE", till.money(given - total, symbol))
    else:
        brand = rng.choice(["VISA DEBIT", "MASTERCARD", "VISA", "AMEX"])
        till.row(brand, till.money(total, symbol))
        till.row("CHANGE DUE", till.money(Decimal(0), symbol))
        till.line()
        till.line("CONTACTLESS" if rng.random() < 0.7 else "CHIP & PIN")
        till.line(f"CARD NUMBER ************{_digits(rng, 4)}")
        till.line(f"PAN SEQ NO. 0{rng.randint(0, 3)}")
        till.line(f"AID: {_aid(brand.split()[0])}")
        till.line(f"MID: ***{_digits(rng, 5)}   TID: ****{_digits(rng, 4)}")
        till.line(f"AUTH CODE: {_digits(rng, 6)}")
        till.row("AMOUNT", till.money(total, True))
        till.line("PLEASE DEBIT MY ACCOUNT")
        till.line("PLEASE KEEP THIS RECEIPT")
    vat: list[VatRow] = []
    if rng.random() < 0.4:
        till.line()
        vat = till.vat_rows({Decimal(20): "S", Decimal(0): "Z"})
        till.vat_table(
            vat,
            ("VAT RATE", "NET", "VAT", "GROSS"),
            lambda r: f"{r.code} {till.number(r.rate, 1)}%",
            rng.choice(["TOTAL", None]),
        )
    savings = -sum((i.total for i in till.items if i.kind == "discount"), Decimal(0))
    if savings and rng.random() < 0.7:
        till.line()
        till.row(
            "TODAY'S SAVINGS" if rng.random() < 0.5 else "YOU SAVED", till.money(savings, True)
        )
    if rng.random() < 0.6:
        till.line(f"Points this visit {int(total)}")
        till.line(f"Points balance {rng.randint(100, 9999):,}")
    till.line()
    till.line(
        when.strftime("%d/%m/%Y %H:%M") if rng.random() < 0.5 else when.strftime("%d/%m/%y %H:%M")
    )
    till.line(
        f"Store {rng.randint(1000, 9999)} Till {rng.randint(1, 30):02d} "
        f"Trans {rng.randint(1000, 9999)} Op {rng.randint(100, 999)}"
    )
    till.barcode(_digits(rng, 18))
    till.line("Thank you for shopping with us", center=True)
    tax = sum((r.tax for r in vat), Decimal(0)) if vat else None
    return _Totals(merchant, when, subtotal if promotions else None, tax, total, vat)


def _fr(till: _Till, rng: random.Random, when: datetime) -> _Totals:
    merchant = rng.choice(MERCHANTS["FR"])
    town, postcode, area = rng.choice(TOWNS["FR"])
    _title(till, merchant)
    till.line(f"{rng.randint(1, 120)} {rng.choice(STREETS['FR'])}", center=True)
    till.line(f"{postcode} {town}", center=True)
    till.line(
        f"TEL {area} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
        center=True,
    )
    till.line(
        f"SIRET {_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 5)}",
        center=True,
    )
    till.line(f"TVA INTRACOM FR{_digits(rng, 11)}", center=True)
    if rng.random() < 0.5:
        till.line("OUVERT DU LUNDI AU SAMEDI 8H30-20H", center=True)
    till.line()
    till.shop(rng)
    subtotal = till.sum()
    remises = rng.random() < 0.4
    symbol = rng.random() < 0.6
    if remises:
        till.row(rng.choice(["SOUS-TOTAL", "SOUS TOTAL"]), till.money(subtotal, symbol))
        for _ in range(rng.randint(1, 2)):
            amount = min(Decimal(rng.randint(30, 250)) / 100, cents(subtotal / 5))
            till.discount(
                rng.choice(["REMISE FIDELITE", "BON D'ACHAT", "REMISE CARTE"]),
                amount,
                till.main_rate(),
                after_subtotal=True,
                symbol=symbol,
            )
    total = till.sum()
    till.rule("=")
    wording = rng.choice(["TOTAL A PAYER", "TOTAL TTC", "TOTAL"])
    till.row(
        wording,
        till.money(total, symbol),
        bold=True,
        size="tall" if rng.random() < 0.4 else "normal",
    )
    articles = till.item_count()
    till.line(rng.choice([f"NB ARTICLES {articles}", f">>>> {articles} ARTICLES"]))
    till.line()
    card = rng.random() < 0.65
    if card:
        till.row(rng.choice(["CB", "CARTE BANCAIRE", "CB SANS CONTACT"]), till.money(total, True))
    else:
        given = _cash_given(rng, total)
        till.row("ESPECES", till.money(given, True))
        till.row(rng.choice(["RENDU", "RENDU MONNAIE"]), till.money(given - total, True))
    till.line()
    rows = till.vat_rows({Decimal(20): "2", Decimal("5.5"): "1"})
    till.vat_table(
        rows,
        ("TVA", "HT", "TVA", "TTC"),
        lambda r: f"{r.code} {till.number(r.rate)}%",
        rng.choice(["TOTAL", "TOTAUX"]),
    )
    if rng.random() < 0.5:
        till.line()
        till.line(f"CARTE FIDELITE N° ****{_digits(rng, 4)}")
        till.row("CAGNOTTE DISPONIBLE", till.money(Decimal(rng.randint(0, 900)) / 100, True))
    savings = -sum((i.total for i in till.items if i.kind == "discount"), Decimal(0))
    if savings and rng.random() < 0.7:
        till.line(f"VOUS AVEZ ECONOMISE {till.money(savings, True)}", center=True)
    if card:
        till.line()
        till.line("CARTE BANCAIRE", center=True)
        till.line("SANS CONTACT", center=True)
        till.line(f"A0000000{_digits(rng, 6)}", center=True)
        till.line(when.strftime("LE %d/%m/%y A %H:%M:%S"))
        till.line(f"{merchant[:20]} {town}")
        till.line(f"############{_digits(rng, 4)}")
        till.line(f"{_digits(rng, 8)} {_hex(rng, 6)}")
        till.line("MONTANT REEL :")
        till.row("", f"{till.number(total)} EUR")
        till.line("DEBIT")
        till.line("TICKET CLIENT A CONSERVER", center=True)
    till.line()
    till.line(when.strftime("%d/%m/%Y %H:%M:%S") + f" MAG {rng.randint(1, 999):03d}")
    till.line(
        f"CAISSE {rng.randint(1, 40):03d} TICKET {rng.randint(1000, 9999)} "
        f"CAISSIER {rng.randint(1, 99):02d}"
    )
    till.barcode(_digits(rng, 13))
    till.line(rng.choice(["MERCI DE VOTRE VISITE", "MERCI ET A BIENTOT"]), center=True)
    tax = sum((r.tax for r in rows), Decimal(0))
    return _Totals(merchant, when, subtotal if remises else None, tax, total, rows)


_COUNTRY_RECEIPTS: dict[str, Callable[[_Till, random.Random, datetime], _Totals]] = {
    "US": _us,
    "DE": _de,
    "UK": _uk,
    "FR": _fr,
}


def receipt_truth(seed: int) -> TruthPhotoReceipt:
    """One receipt's printed lines and its truth (no image; cheap)."""
    rng = random.Random(f"receipt-photos:{seed}")
    country = country_of(seed)
    layout = _layout(rng, country)
    till = _Till(country, layout, Decimal(rng.choice(US_SALES_TAX)))
    when = datetime(
        2026,
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(7, 21),
        rng.randint(0, 59),
        rng.randint(0, 59),
    )
    totals = _COUNTRY_RECEIPTS[country](till, rng, when)
    conv = CONVENTIONS[country]
    return TruthPhotoReceipt(
        seed=seed,
        country=country,
        kind=kind_of(seed),
        merchant=totals.merchant,
        date=totals.when.date().isoformat(),
        currency=conv.currency,
        items=till.items,
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        tax_included=conv.tax_included,
        vat=totals.vat,
        columns=layout.columns,
        lines=till.lines,
    )


# --- the print, the photo and the scan --------------------------------------------------------


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _smooth_noise(np_rng: np.random.Generator, length: int, sigma: float) -> np.ndarray:
    """Noise along one axis, smoothed over ``sigma`` pixels, scaled to 0..1."""
    raw = np_rng.random((1, length)).astype(np.float32)
    smooth = cv2.GaussianBlur(raw, (0, 0), sigmaX=sigma, sigmaY=0.1)[0]
    low, high = float(smooth.min()), float(smooth.max())
    return (smooth - low) / (high - low) if high > low else np.zeros(length, np.float32)


def print_roll(receipt: TruthPhotoReceipt) -> np.ndarray:
    """The printed roll as RGB float32 (0..255): thermal print, faded and uneven."""
    rng = random.Random(f"receipt-photos-print:{receipt.seed}")
    np_rng = np.random.default_rng(rng.getrandbits(32))
    regular, bold = _font(FONT_REGULAR, PRINT_FONT_PX), _font(FONT_BOLD, PRINT_FONT_PX)
    advance = regular.getlength("0")
    ascent, descent = regular.getmetrics()
    pitch = round(PRINT_FONT_PX * rng.uniform(1.12, 1.32))
    margin = round(advance * rng.uniform(1.0, 2.2))
    width = round(advance * receipt.columns) + 2 * margin
    double = 2 * (ascent + descent)

    def height_of(line: PrintedLine) -> int:
        if line.barcode:
            return round(pitch * 3.4)
        return double + pitch // 4 if line.size != "normal" else pitch

    top, bottom = round(pitch * rng.uniform(1.5, 3.0)), round(pitch * rng.uniform(2.0, 4.0))
    height = top + sum(height_of(line) for line in receipt.lines) + bottom
    ink = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(ink)
    y = top
    for line in receipt.lines:
        font = bold if line.bold else regular
        if line.barcode:
            digits = line.text.strip()
            bars_width = min(width - 2 * margin, round(advance * len(digits) * 1.4))
            x, x_end = (width - bars_width) // 2, (width + bars_width) // 2
            module = max(2, round(advance / 6))
            dark = True
            while x < x_end:
                step = module * rng.randint(1, 3)
                if dark:
                    draw.rectangle(
                        [x, y, min(x + step, x_end) - 1, y + round(pitch * 2.2)], fill=255
                    )
                x += step
                dark = not dark
            draw.text((margin, y + round(pitch * 2.35)), line.text, fill=255, font=font)
        elif line.size == "normal":
            draw.text((margin, y), line.text, fill=255, font=font)
        elif line.text.strip():
            strip = Image.new("L", (round(advance * len(line.text)) + 2, ascent + descent), 0)
            ImageDraw.Draw(strip).text((0, 0), line.text, fill=255, font=font)
            x_scale = 2 if line.size == "wide" else 1
            ink.paste(
                strip.resize((strip.width * x_scale, double), Image.Resampling.BILINEAR),
                (margin, y),
            )
        y += height_of(line)

    coverage = cv2.GaussianBlur(np.asarray(ink, np.float32) / 255, (0, 0), 0.7)  # dots bleed
    faded = rng.random() < 0.35
    density = rng.uniform(0.5, 0.8) if faded else rng.uniform(0.85, 1.0)
    head = 1 - rng.uniform(0.0, 0.45) * _smooth_noise(np_rng, width, rng.uniform(2, 10))
    feed = 1 - rng.uniform(0.0, 0.3) * _smooth_noise(np_rng, height, rng.uniform(20, 80))
    dropout = np_rng.random(coverage.shape, dtype=np.float32) < rng.uniform(0.0, 0.12)
    coverage = coverage * density * head[None, :] * feed[:, None]
    coverage = np.where(dropout, coverage * 0.35, coverage)[:, :, None]
    paper = np.array(
        [rng.uniform(240, 252), rng.uniform(238, 250), rng.uniform(230, 246)], np.float32
    )
    ink_colour = np.array(
        [rng.uniform(20, 60), rng.uniform(20, 55), rng.uniform(25, 75)], np.float32
    )
    grain = np_rng.normal(0.0, 1.5, (height, width, 1)).astype(np.float32)
    return paper * (1 - coverage) + ink_colour * coverage + grain


def _table(rng: random.Random, np_rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A surface to photograph the receipt on: wood, laminate, a dark desk, granite or cloth."""
    kind = rng.choice(["wood", "laminate", "dark", "granite", "cloth"])
    base = {
        "wood": (rng.uniform(110, 170), rng.uniform(70, 110), rng.uniform(40, 70)),
        "laminate": (rng.uniform(180, 225),) * 3,
        "dark": (rng.uniform(25, 60), rng.uniform(25, 60), rng.uniform(30, 70)),
        "granite": (rng.uniform(90, 150),) * 3,
        "cloth": (rng.uniform(40, 200), rng.uniform(40, 200), rng.uniform(40, 200)),
    }[kind]
    small = np_rng.normal(0.0, 1.0, (max(2, height // 16), max(2, width // 16))).astype(np.float32)
    texture = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    if kind == "wood":  # grain: long streaks along one direction
        streaks = np_rng.normal(0.0, 1.0, (1, width)).astype(np.float32)
        streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=3, sigmaY=0.1)
        texture = 0.4 * texture + 2.5 * np.repeat(streaks, height, axis=0)
        amplitude = 12.0
    elif kind == "granite":
        texture = np_rng.normal(0.0, 1.0, (height, width)).astype(np.float32)
        amplitude = 30.0
    elif kind == "cloth":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        texture = 0.3 * texture + np.sin(xx * 1.3) * np.sin(yy * 1.3)
        amplitude = 10.0
    else:
        amplitude = 6.0
    surface = np.asarray(base, np.float32)[None, None, :] + amplitude * texture[:, :, None]
    return surface + np_rng.normal(0.0, 2.0, (height, width, 1)).astype(np.float32)


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    cr, sr = math.cos(roll), math.sin(roll)
    around_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    around_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    around_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return around_z @ around_y @ around_x


def _encode(pixels: np.ndarray, quality: int, grey: bool = False) -> bytes:
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if grey:
        image = image.convert("L")
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _fit_scale(scale: float, height: int, width: int) -> float:
    """``scale``, or less where the image would exceed a phone camera's size."""
    return min(scale, MAX_SIDE / max(height, width))


def photograph(page: np.ndarray, seed: int) -> bytes:
    """A phone photo of the print on a table, as JPEG bytes: curl, keystone up to 8 degrees,
    rotation, a shadow, blur, noise, JPEG quality 45-85."""
    rng = random.Random(f"receipt-photos-photo:{seed}")
    np_rng = np.random.default_rng(rng.getrandbits(32))
    height, width = page.shape[:2]
    # paper curl: text lines bow across the roll, the roll waves gently along its length
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    across = (xx - width / 2) / (width / 2)
    bow = rng.uniform(-0.6, 0.6) * PRINT_FONT_PX
    wave = rng.uniform(0.0, 0.3) * PRINT_FONT_PX
    period, phase = rng.uniform(0.6, 1.5) * height, rng.uniform(0, 2 * math.pi)
    map_x = xx + wave * np.sin(2 * math.pi * yy / period + phase)
    map_y = yy + bow * across**2
    paper = cv2.remap(page, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    paper *= (1 - rng.uniform(0.0, 0.12) * across**2)[:, :, None]  # curled edges catch less light
    # keystone (pitch and yaw up to 8 degrees) and rotation, through a pinhole camera
    turn = _rotation(
        *(math.radians(rng.uniform(-8, 8)) for _ in range(2)), math.radians(rng.uniform(-6, 6))
    )
    corners = np.array(
        [
            [-width / 2, -height / 2, 0],
            [width / 2, -height / 2, 0],
            [width / 2, height / 2, 0],
            [-width / 2, height / 2, 0],
        ]
    )
    turned = corners @ turn.T
    distance = max(width, height) * rng.uniform(1.1, 1.6)
    projected = distance * turned[:, :2] / (distance + turned[:, 2:3])
    low, high = projected.min(axis=0), projected.max(axis=0)
    span_x, span_y = high - low
    canvas_h = int(span_y * (1 + 2 * rng.uniform(0.03, 0.08)))
    canvas_w = int(
        max(span_x * (1 + 2 * rng.uniform(0.05, 0.25)), canvas_h * rng.uniform(0.45, 0.75))
    )
    offset = np.array(
        [rng.uniform(0.2, 0.8) * (canvas_w - span_x), rng.uniform(0.3, 0.7) * (canvas_h - span_y)]
    )
    target = (projected - low + offset).astype(np.float32)
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warp = cv2.getPerspectiveTransform(source, target)
    size = (canvas_w, canvas_h)
    paper = cv2.warpPerspective(paper, warp, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(np.ones((height, width), np.float32), warp, size)[:, :, None]
    surface = _table(rng, np_rng, canvas_h, canvas_w)
    drop = cv2.GaussianBlur(np.roll(alpha[:, :, 0], (6, 4), axis=(0, 1)), (0, 0), 8)
    surface *= (1 - 0.35 * drop)[:, :, None]  # the receipt's own shadow on the table
    pixels = surface * (1 - alpha) + paper * alpha
    # light: a gradient across the frame, sometimes a soft-edged shadow (the phone, a hand)
    yy, xx = np.mgrid[0:canvas_h, 0:canvas_w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    along = xx * math.cos(angle) + yy * math.sin(angle)
    along = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    light = 1 - rng.uniform(0.1, 0.45) * along
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * math.pi)
        edge = xx * math.cos(angle) + yy * math.sin(angle)
        cut = rng.uniform(np.percentile(edge, 20), np.percentile(edge, 60))
        softness = rng.uniform(0.02, 0.08) * max(canvas_w, canvas_h)
        light *= 1 - rng.uniform(0.2, 0.45) / (1 + np.exp(-(edge - cut) / softness))
    cast = rng.choice([(1.0, 0.96, 0.86), (0.93, 0.97, 1.0), (1.0, 1.0, 1.0)])
    pixels = pixels * light[:, :, None] * np.asarray(cast, np.float32) * rng.uniform(0.9, 1.1)
    # the camera: text 26-40 px high (a phone held over a receipt, the receipt filling the
    # frame's height), focus blur, sometimes shake, sensor noise, JPEG
    scale = _fit_scale(rng.uniform(26, 40) / PRINT_FONT_PX, canvas_h, canvas_w)
    out = (max(1, round(canvas_w * scale)), max(1, round(canvas_h * scale)))
    pixels = cv2.resize(pixels, out, interpolation=cv2.INTER_AREA)
    pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.3, 1.1))
    if rng.random() < 0.25:
        length = rng.randint(1, 3)
        kernel = np.zeros((length * 2 + 1, length * 2 + 1), np.float32)
        direction = rng.uniform(0, math.pi)
        for step in range(-length, length + 1):
            kernel[
                round(length + step * math.sin(direction)),
                round(length + step * math.cos(direction)),
            ] = 1
        pixels = cv2.filter2D(pixels, -1, kernel / kernel.sum())
    pixels = pixels + np_rng.normal(0.0, rng.uniform(2, 7), pixels.shape).astype(np.float32)
    return _encode(pixels, rng.randint(45, 85))


def scan(page: np.ndarray, seed: int) -> bytes:
    """A clean flatbed scan of the print, as JPEG bytes: white lid, a slight tilt, even light."""
    rng = random.Random(f"receipt-photos-scan:{seed}")
    np_rng = np.random.default_rng(rng.getrandbits(32))
    height, width = page.shape[:2]
    pad_y, pad_x = int(height * rng.uniform(0.02, 0.05)), int(width * rng.uniform(0.05, 0.2))
    lid = rng.uniform(235, 252)
    canvas = np.full((height + 2 * pad_y, width + 2 * pad_x, 3), lid, np.float32)
    canvas[pad_y : pad_y + height, pad_x : pad_x + width] = page
    centre = (canvas.shape[1] / 2, canvas.shape[0] / 2)
    turn = cv2.getRotationMatrix2D(centre, rng.uniform(-1.5, 1.5), 1.0)
    canvas = cv2.warpAffine(
        canvas,
        turn,
        (canvas.shape[1], canvas.shape[0]),
        flags=cv2.INTER_LINEAR,
        borderValue=(lid, lid, lid),
    )
    scale = _fit_scale(rng.uniform(20, 28) / PRINT_FONT_PX, *canvas.shape[:2])
    out = (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale))
    pixels = cv2.resize(canvas, out, interpolation=cv2.INTER_AREA)
    pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.3, 0.6))
    pixels = pixels + np_rng.normal(0.0, rng.uniform(1, 3), pixels.shape).astype(np.float32)
    return _encode(pixels, rng.randint(70, 90), grey=rng.random() < 0.6)


def receipt_photo(seed: int) -> tuple[TruthPhotoReceipt, bytes]:
    """The receipt of ``seed`` and the JPEG the server receives (a photo, or a scan)."""
    receipt = receipt_truth(seed)
    page = print_roll(receipt)
    image = scan(page, seed) if receipt.kind == "scan" else photograph(page, seed)
    return receipt, image
