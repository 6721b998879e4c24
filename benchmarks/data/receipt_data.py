"""Synthetic grocery receipts with their ground truth, for the receipt benchmark and tests.

:func:`generate` makes the truth (merchant, 3-25 items, quantities ``2 @ 1.99``, weighed items,
discounts, deposits, tax lines, comma decimals, wrapped names), :func:`render` prints it as a
till would (names at the margin, amounts right-aligned, a larger title), and :func:`degrade`
turns the page into what the server receives: a phone photo (slight rotation and perspective,
blur, uneven light, noise) or a thermal-paper scan (faded, low contrast), as JPEG at quality
50-90. Everything is seeded: the same seed gives the same receipt and the same image.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

CENT = Decimal("0.01")
MERCHANTS = [
    "FRESH MART",
    "GREEN GROCER",
    "CORNER STORE",
    "QUICK SHOP 24",
    "VALUE FOODS",
    "BIOLADEN BERLIN",
    "MARCHE DU COIN",
    "SUPERMERCADO SOL",
    "HARBOR MARKET",
    "DAILY BASKET",
]
PRODUCTS = [
    "BANANAS",
    "OAT MILK 1L",
    "SOURDOUGH LOAF",
    "EGGS 12PK",
    "BASMATI RICE 1KG",
    "CHEDDAR 400G",
    "GREEK YOGHURT",
    "OLIVE OIL 500ML",
    "CHICKPEAS 400G",
    "TOMATO PASSATA",
    "ROLLED OATS",
    "PEANUT BUTTER",
    "BABY SPINACH",
    "SALMON FILLETS",
    "BUTTER 250G",
    "APPLE JUICE 1L",
    "COFFEE BEANS",
    "PASTA PENNE",
    "CHOCOLATE BAR",
    "WHOLE CHICKEN",
    "DISH SOAP",
    "TEA BAGS 80",
]
LONG_PRODUCTS = [  # printed on two lines: the name wraps, the price is on the second
    ("ORGANIC FREE RANGE", "EGGS 12PK"),
    ("ITALIAN EXTRA VIRGIN", "OLIVE OIL 1L"),
    ("UNSWEETENED ALMOND", "DRINK 1L"),
    ("WHOLEGRAIN SEEDED", "SANDWICH LOAF"),
]
WEIGHED = ["APPLES GALA", "TOMATOES VINE", "CARROTS", "POTATOES", "GRAPES RED", "ONIONS"]
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
]


@dataclass
class TruthItem:
    name: str
    total: Decimal
    kind: str = "item"  # item | discount | deposit
    quantity: Decimal = Decimal(1)


@dataclass
class Line:
    """One printed line: text at the left margin, an amount right-aligned (or none)."""

    left: str
    right: str = ""
    title: bool = False


@dataclass
class TruthReceipt:
    seed: int
    merchant: str
    items: list[TruthItem]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    comma: bool  # decimals printed with a comma (European receipts)
    lines: list[Line] = field(default_factory=list)


def money(value: Decimal, comma: bool) -> str:
    text = f"{value.quantize(CENT):.2f}"
    return text.replace(".", ",") if comma else text


def generate(seed: int) -> TruthReceipt:
    """A receipt's truth and its printed lines."""
    rng = random.Random(seed)
    comma = rng.random() < 0.3
    merchant = rng.choice(MERCHANTS)
    lines = [
        Line(merchant, title=True),
        Line(f"{rng.randint(1, 999)} {rng.choice(['MAIN ST', 'HIGH ST', 'MARKET RD'])}"),
        Line(
            f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2026 {rng.randint(8, 21)}:"
            f"{rng.randint(0, 59):02d}"
        ),
        Line("-" * 24),
    ]
    items: list[TruthItem] = []
    count = rng.randint(3, 25)
    names = rng.sample(PRODUCTS, k=min(count, len(PRODUCTS)))
    code = rng.random() < 0.4  # a tax-code letter after each amount ("3.49 A")

    def amount(value: Decimal) -> str:
        text = money(value, comma)
        return f"{text} {rng.choice('AB')}" if code and value > 0 else text

    while len(items) < count:
        kind = rng.random()
        price = Decimal(rng.randint(49, 1299)) / 100
        if kind < 0.12 and LONG_PRODUCTS:
            first, second = rng.choice(LONG_PRODUCTS)
            items.append(TruthItem(f"{first} {second}", price))
            lines += [Line(first), Line(second, amount(price))]
        elif kind < 0.27:
            qty = rng.randint(2, 4)
            name = names[len(items) % len(names)]
            total = (price * qty).quantize(CENT)
            items.append(TruthItem(name, total, quantity=Decimal(qty)))
            lines += [Line(name), Line(f"  {qty} @ {money(price, comma)}", amount(total))]
        elif kind < 0.37:
            grams = Decimal(rng.randint(150, 2400)) / 1000
            per_kg = Decimal(rng.randint(99, 799)) / 100
            total = (grams * per_kg).quantize(CENT, rounding=ROUND_HALF_UP)
            name = rng.choice(WEIGHED)
            items.append(TruthItem(name, total, quantity=grams))
            weighed = f"  {grams:.3f} kg @ {money(per_kg, comma)}/kg"
            lines += [
                Line(name),
                Line(weighed.replace(".", ",") if comma else weighed, amount(total)),
            ]
        else:
            name = names[len(items) % len(names)]
            items.append(TruthItem(name, price))
            lines.append(Line(name, amount(price)))
        if rng.random() < 0.08 and items[-1].kind == "item":
            off = min(items[-1].total, Decimal(rng.randint(20, 150)) / 100)
            label = f"COUPON {items[-1].name.split()[0]}"
            items.append(TruthItem(label, -off, kind="discount"))
            negative = money(off, comma)
            lines.append(Line(label, f"-{negative}" if rng.random() < 0.5 else f"{negative}-"))
        if rng.random() < 0.05:
            deposit = Decimal(rng.choice([10, 25, 50])) / 100
            items.append(TruthItem("BOTTLE DEPOSIT", deposit, kind="deposit"))
            lines.append(Line("BOTTLE DEPOSIT", amount(deposit)))
    subtotal = sum((i.total for i in items), Decimal(0))
    rate = Decimal(rng.choice([0, 5, 7, 8]))
    tax = (subtotal * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    total = subtotal + tax
    lines.append(Line("-" * 24))
    lines.append(Line("SUBTOTAL", money(subtotal, comma)))
    if rate:
        lines.append(Line(f"TAX {rate}%" if not comma else f"MWST {rate}%", money(tax, comma)))
    lines.append(
        Line("TOTAL" if not comma else rng.choice(["TOTAL", "SUMME"]), money(total, comma))
    )
    lines.append(Line(rng.choice(["VISA ****1234", "CASH", "DEBIT CARD"]), money(total, comma)))
    lines.append(Line("THANK YOU"))
    return TruthReceipt(seed, merchant, items, subtotal, tax, total, comma, lines)


def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path and Path(path).is_file():
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def render(receipt: TruthReceipt) -> Image.Image:
    """The receipt as a till prints it: one column, amounts right-aligned, a larger title."""
    rng = random.Random(receipt.seed * 7 + 1)
    fonts = [f for f in FONTS if Path(f).is_file()] or [None]
    path = rng.choice(fonts)
    size = rng.randint(24, 30)
    font, title = _font(path, size), _font(path, int(size * 1.5))
    width = rng.randint(560, 720)
    pitch = int(size * rng.uniform(1.35, 1.6))
    height = 60 + pitch * (len(receipt.lines) + 2)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    margin = rng.randint(20, 40)
    y = 30
    for line in receipt.lines:
        if line.title:
            text_width = draw.textlength(line.left, font=title)
            draw.text(((width - text_width) / 2, y), line.left, fill=0, font=title)
            y += int(pitch * 1.5)
            continue
        draw.text((margin, y), line.left, fill=0, font=font)
        if line.right:
            draw.text(
                (width - margin - draw.textlength(line.right, font=font), y),
                line.right,
                fill=0,
                font=font,
            )
        y += pitch
    return image


def degrade(image: Image.Image, seed: int) -> bytes:
    """A phone photo or a thermal-paper scan of the printed page, as JPEG bytes."""
    rng = random.Random(seed * 13 + 5)
    photo = rng.random() < 0.6
    page = image.convert("L")
    if not photo:  # thermal paper: faded print on a grey-ish background
        page = ImageEnhance.Contrast(page).enhance(rng.uniform(0.35, 0.6))
        page = ImageEnhance.Brightness(page).enhance(rng.uniform(1.0, 1.15))
    # a slight perspective (photo) and rotation up to 3 degrees
    width, height = page.size
    if photo:
        d = rng.uniform(0.0, 0.025)
        shrink = [rng.uniform(0, d) * width for _ in range(4)]
        quad = (shrink[0], 0, shrink[1], height, width - shrink[2], height, width - shrink[3], 0)
        page = page.transform(
            (width, height), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=235
        )
    page = page.rotate(rng.uniform(-3, 3), Image.Resampling.BICUBIC, expand=True, fillcolor=235)
    page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2 if photo else 0.8)))
    pixels = np.asarray(page, dtype=np.float32)
    if photo:  # uneven light: a brightness gradient across the page
        ys = np.linspace(0, 1, pixels.shape[0])[:, None]
        pixels = pixels * (1 - rng.uniform(0, 0.25) * ys)
    noise = np.random.default_rng(seed).normal(0, rng.uniform(2, 9), pixels.shape)
    pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, "JPEG", quality=rng.randint(50, 90))
    return buffer.getvalue()


def receipt_photo(seed: int) -> tuple[TruthReceipt, bytes]:
    receipt = generate(seed)
    return receipt, degrade(render(receipt), seed)
