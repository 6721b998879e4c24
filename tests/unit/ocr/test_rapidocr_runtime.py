"""RapidOcrRuntime with its packaged PP-OCRv6 models: real reading of rendered receipts, the
lines it groups, the hash check, and no network at run time."""

from __future__ import annotations

import io
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from serve_app.ocr import rapidocr_runtime
from serve_app.ocr.rapidocr_runtime import PackagedWeightsError, RapidOcrRuntime, packaged_model
from serve_app.ocr.receipts import ReceiptParser

ITEMS = [("BANANAS", "1.29"), ("OAT MILK 1L", "2.49"), ("SOURDOUGH", "4.20")]


def receipt_photo(
    degrees: float = 0.0, blur: float = 0.0, quality: int | None = None
) -> np.ndarray:
    """A receipt: a large title, names at the margin and prices far right, then a total;
    optionally turned, blurred and JPEG-compressed as a phone photo would be."""
    image = Image.new("RGB", (640, 420), "white")
    draw = ImageDraw.Draw(image)
    draw.text((180, 20), "FRESH MART", fill="black", font=ImageFont.load_default(size=44))
    font = ImageFont.load_default(size=28)
    y = 110
    for name, price in ITEMS:
        draw.text((30, y), name, fill="black", font=font)
        draw.text((610 - font.getlength(price), y), price, fill="black", font=font)
        y += 48
    total = "7.98"
    draw.text((30, y + 20), "TOTAL", fill="black", font=font)
    draw.text((610 - font.getlength(total), y + 20), total, fill="black", font=font)
    if degrees:
        image = image.rotate(
            degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white"
        )
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if quality:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(image)


@pytest.fixture(scope="module")
def runtime() -> RapidOcrRuntime:
    return RapidOcrRuntime(threads=1)


def test_it_reports_the_packaged_models(runtime: RapidOcrRuntime):
    assert (runtime.engine, runtime.weights, runtime.device) == ("rapidocr", "pretrained", "cpu")
    assert (runtime.det_arch, runtime.reco_arch) == ("PP-OCRv6_det_small", "PP-OCRv6_rec_small")


@pytest.mark.parametrize(
    ("degrees", "blur", "quality"),
    [(0.0, 0.0, None), (2.0, 0.8, 60), (-2.5, 0.6, 70)],
    ids=["clean", "turned-blurred-jpeg60", "turned-the-other-way"],
)
def test_a_rendered_receipt_is_read_into_its_items(runtime, degrees, blur, quality):
    (page,) = runtime.read([receipt_photo(degrees, blur, quality)])
    lines = [line.text for line in page.lines]
    # names and their far-right prices come out as one line each, in order
    for name, price in ITEMS:
        assert any(line.replace(" ", "").endswith(price) and name[:4] in line for line in lines), (
            lines
        )
    receipt = ReceiptParser().parse(lines)
    assert [(i.total) for i in receipt.items] == [float(p) for _, p in ITEMS], lines
    assert receipt.total == 7.98 and receipt.consistent, lines


def test_pages_of_a_batch_come_back_in_order(runtime):
    pages = [receipt_photo(), np.full((64, 64, 3), 255, np.uint8)]
    first, blank = runtime.read(pages)
    assert first.width == 640 and first.lines
    assert (blank.width, blank.height, blank.lines) == (64, 64, [])


def test_the_packaged_models_are_hash_checked(tmp_path: Path, monkeypatch):
    package = tmp_path / "rapidocr"
    shutil.copytree(rapidocr_runtime.package_dir(), package)
    monkeypatch.setattr(rapidocr_runtime, "package_dir", lambda: package)
    assert packaged_model("PP-OCRv6_det_small").parent == package / "models"
    with (package / "models" / "PP-OCRv6_det_small.onnx").open("r+b") as model:
        model.seek(1000)
        model.write(b"\x00\x01\x02\x03")  # one damaged byte range
    with pytest.raises(PackagedWeightsError, match="does not match its recorded hash"):
        packaged_model("PP-OCRv6_det_small")
    (package / "models" / "PP-OCRv6_rec_small.onnx").unlink()
    with pytest.raises(PackagedWeightsError, match="missing"):
        packaged_model("PP-OCRv6_rec_small")


def test_nothing_is_fetched_at_run_time(monkeypatch):
    """Loading and reading with every network connection refused."""

    def refuse(self, address):
        raise OSError(f"no network in this test ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    fresh = RapidOcrRuntime(threads=1)
    (page,) = fresh.read([receipt_photo()])
    assert any("TOTAL" in line.text for line in page.lines)
