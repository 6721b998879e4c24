"""Receipt accuracy benchmark: synthetic receipts, photographed or scanned, read by the server.

Run ``python -m benchmarks.receipts [--suite photos|classic|both] [--seed-base held-out]
[--count N] [--engines rapidocr,doctr]``; prints a table per suite and writes JSON to
``benchmarks/results/<timestamp>/receipts.json``. Each receipt goes through ``POST /v1/ocr``
of ``serve-app run`` (local.yaml, the OCR engine set per run) as a JPEG. Two suites, reported
apart (default: both):

  photos    :mod:`benchmarks.data.receipt_photos`: US, German, UK and French supermarket
            receipts (quantity and weight lines, VAT tables, card slips, ...), thermal prints
            photographed on a table or scanned; 80 by default, 20 per country, 1 in 5 a scan.
            ``--seed-base`` picks the seeds: ``development`` (0, the default; rules are written
            against these) or ``held-out`` (50000; targets are measured on these only)
  classic   :mod:`benchmarks.data.receipt_data`: the project's own receipts (40 from ``--seed``)

Per engine, with real weights only (docTR runs only when its weights are in the weights
directory; random weights would measure nothing), per country and photo/scan:

  item F1         an item counts when its name matches loosely (similarity >= 0.8 after
                  dropping spaces and punctuation) and its total exactly, discounts and
                  deposits included; P and R beside it
  exact totals    receipts whose total is the printed one, to the cent
  consistent      receipts the parser marks ``consistent`` (every truth receipt is)
  quantity right  matched items whose quantity is within 0.001 of the truth (weights too)
  p50 s           seconds per receipt, median; pages/s for the whole suite
                  (two clients in a closed loop)

``--printed`` scores the parser alone on the printed text (no OCR, no server): the rules'
own errors, apart from what OCR misreads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from rapidfuzz import fuzz

from benchmarks.data import receipt_data, receipt_photos
from benchmarks.data.receipt_data import TruthItem, TruthReceipt
from benchmarks.data.receipt_photos import TruthPhotoItem, TruthPhotoReceipt
from benchmarks.harness.loadgen import print_table, write_json
from benchmarks.harness.servers import ROOT, this_server
from serve_app.ocr.weights import missing_by_name
from serve_app.settings import Settings

TOKEN = "receipts-token-0123456789"
QUANTITY_TOLERANCE = 0.001
SEED_BASES = {
    "development": receipt_photos.DEVELOPMENT_SEED_BASE,
    "held-out": receipt_photos.HELD_OUT_SEED_BASE,
}
Truth = TruthReceipt | TruthPhotoReceipt


def normalised(name: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", name.upper())


def match_items(
    truth: Truth, found: list[dict[str, Any]]
) -> list[tuple[TruthItem | TruthPhotoItem, dict[str, Any]]]:
    """Truth items matched one to one by an exact total and a loosely equal name."""
    unmatched = list(found)
    pairs = []
    for item in truth.items:
        for candidate in unmatched:
            same_total = Decimal(str(candidate["total"])) == item.total
            if (
                same_total
                and fuzz.ratio(normalised(item.name), normalised(candidate["name"])) >= 80
            ):
                unmatched.remove(candidate)
                pairs.append((item, candidate))
                break
    return pairs


@dataclass
class ReceiptScore:
    """Counts over a set of receipts; add sets together, then read the rates."""

    receipts: int = 0
    truth_items: int = 0
    found_items: int = 0
    matched: int = 0
    quantity_right: int = 0
    exact_totals: int = 0
    consistent: int = 0
    seconds: list[float] = field(default_factory=list)

    def add(self, other: ReceiptScore) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        return self.matched / self.found_items if self.found_items else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth_items if self.truth_items else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "receipts": self.receipts,
            "items": self.truth_items,
            "found_items": self.found_items,
            "matched_items": self.matched,
            "item_precision": self.precision,
            "item_recall": self.recall,
            "item_f1": self.f1,
            "exact_totals": self.exact_totals,
            "consistent": self.consistent,
            "quantity_right": self.quantity_right,
            "p50_s": statistics.median(self.seconds) if self.seconds else None,
        }

    def row(self, name: str) -> list[str]:
        n, matched = self.receipts, self.matched
        p50 = f"{statistics.median(self.seconds):.2f}" if self.seconds else "-"
        share = f" ({100 * self.quantity_right / matched:.0f}%)" if matched else ""
        return [
            name,
            str(n),
            f"{self.f1:.3f} ({self.precision:.2f} / {self.recall:.2f})",
            f"{self.exact_totals}/{n}",
            f"{self.consistent}/{n}",
            f"{self.quantity_right}/{matched}{share}",
            p50,
        ]


ROW_HEADER = [
    "group",
    "receipts",
    "item F1 (P / R)",
    "exact totals",
    "consistent",
    "quantity right",
    "p50 s",
]


def score_receipt(truth: Truth, body: Any, seconds: float | None = None) -> ReceiptScore:
    """One receipt's counts from the server's answer (``{"receipt": ...}``)."""
    receipt = (body or {}).get("receipt") or {}
    found = receipt.get("items") or []
    pairs = match_items(truth, found)
    total = receipt.get("total")
    return ReceiptScore(
        receipts=1,
        truth_items=len(truth.items),
        found_items=len(found),
        matched=len(pairs),
        quantity_right=sum(
            abs(float(found_item.get("quantity", 1.0)) - float(item.quantity)) <= QUANTITY_TOLERANCE
            for item, found_item in pairs
        ),
        exact_totals=int(total is not None and Decimal(str(total)) == truth.total),
        consistent=int(bool(receipt.get("consistent"))),
        seconds=[] if seconds is None else [seconds],
    )


def groups_of(truth: Truth) -> list[str]:
    """The report's groups a receipt counts in: its country, country and kind, its kind."""
    if isinstance(truth, TruthPhotoReceipt):
        return [truth.country, f"{truth.country} {truth.kind}", truth.kind]
    return []


def score(
    truths: Sequence[Truth],
    bodies: Sequence[Any],
    seconds: Sequence[float | None] | None = None,
    groups: Callable[[Truth], list[str]] = groups_of,
) -> dict[str, Any]:
    """The suite's counts, overall and per group, and the receipts with a miss."""
    seconds = seconds if seconds is not None else [None] * len(truths)
    overall = ReceiptScore()
    by_group: dict[str, ReceiptScore] = {}
    misses = []
    for truth, body, took in zip(truths, bodies, seconds, strict=True):
        one = score_receipt(truth, body, took)
        overall.add(one)
        for name in groups(truth):
            by_group.setdefault(name, ReceiptScore()).add(one)
        if one.matched < one.truth_items or one.found_items > one.matched or not one.exact_totals:
            misses.append(miss(truth, body))
    return {"all": overall, "groups": dict(sorted(by_group.items())), "misses": misses}


def miss(truth: Truth, body: Any) -> dict[str, Any]:
    """What went wrong on one receipt: unmatched truth items, extra items, the text read."""
    receipt = (body or {}).get("receipt") or {}
    found = receipt.get("items") or []
    pairs = match_items(truth, found)
    matched_truth = {id(item) for item, _ in pairs}
    matched_found = {id(found_item) for _, found_item in pairs}
    return {
        "seed": truth.seed,
        "country": getattr(truth, "country", None),
        "kind": getattr(truth, "kind", None),
        "total": str(truth.total),
        "total_read": receipt.get("total"),
        "consistent": receipt.get("consistent"),
        "missed": [f"{i.name} {i.total}" for i in truth.items if id(i) not in matched_truth],
        "extra": [f"{i['name']} {i['total']}" for i in found if id(i) not in matched_found],
        "wrong_quantity": [
            f"{item.name}: {found_item.get('quantity')} for {item.quantity}"
            for item, found_item in pairs
            if abs(float(found_item.get("quantity", 1.0)) - float(item.quantity))
            > QUANTITY_TOLERANCE
        ],
        "text": (body or {}).get("text", "")[:3000],
        "error": (body or {}).get("error"),
    }


def printed_lines(truth: Truth) -> list[str]:
    """The text as printed, line by line: what a perfect OCR would read."""
    if isinstance(truth, TruthPhotoReceipt):
        return truth.text_lines
    return [f"{line.left} {line.right}".strip() for line in truth.lines]


def config_for(engine: str, out: Path) -> Path:
    raw = yaml.safe_load((ROOT / "deployments" / "local.yaml").read_text())
    for deployment in raw["applications"][0]["deployments"]:
        if deployment["name"] == "ocr":
            deployment["user_config"]["engine"] = engine
    path = out / f"local-{engine}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def read_all(url: str, photos: list[bytes], clients: int) -> tuple[list[Any], list[float]]:
    """Every photo through /v1/ocr by ``clients`` in a closed loop; bodies and each photo's
    seconds (in the photos' order)."""
    results: list[Any] = [None] * len(photos)
    seconds: list[float] = [0.0] * len(photos)
    queue = list(range(len(photos)))
    done: list[int] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/jpeg"}
    async with httpx.AsyncClient(timeout=300) as client:

        async def worker() -> None:
            while queue:
                i = queue.pop(0)
                while True:
                    started = time.perf_counter()
                    r = await client.post(f"{url}/v1/ocr", content=photos[i], headers=headers)
                    if r.status_code == 503 and "Retry-After" in r.headers:
                        await asyncio.sleep(float(r.headers["Retry-After"]))
                        continue
                    seconds[i] = time.perf_counter() - started
                    results[i] = r.json() if r.status_code == 200 else {"error": r.text}
                    break
                done.append(i)
                if len(done) % 20 == 0:
                    print(f"  {len(done)}/{len(photos)} read", flush=True)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return results, seconds


@dataclass
class Suite:
    """One suite's receipts: truths, JPEGs and how they were chosen."""

    name: str
    truths: list[Truth]
    photos: list[bytes]
    seeds: dict[str, int]


def build_suites(args: argparse.Namespace, images: bool = True) -> list[Suite]:
    """The suites chosen, rendered as JPEGs (``images``) or as truth only."""
    suites = []
    if args.suite in ("classic", "both"):
        seeds = list(range(args.seed, args.seed + (args.count or 40)))
        suites.append(suite_of("classic", seeds, {"seed": args.seed}, images))
    if args.suite in ("photos", "both"):
        seeds = receipt_photos.suite_seeds(args.seed_base, args.count or 80)
        suites.append(suite_of("photos", seeds, {"seed_base": args.seed_base}, images))
    return suites


def suite_of(name: str, seeds: list[int], chosen: dict[str, int], images: bool) -> Suite:
    photos = name == "photos"
    if not images:
        truth_of = receipt_photos.receipt_truth if photos else receipt_data.generate
        return Suite(name, [truth_of(seed) for seed in seeds], [], chosen)
    print(f"{name}: rendering {len(seeds)} receipts from seed {seeds[0]} ...", flush=True)
    photo_of = receipt_photos.receipt_photo if photos else receipt_data.receipt_photo
    made = [photo_of(seed) for seed in seeds]
    return Suite(name, [t for t, _ in made], [p for _, p in made], chosen)


def seed_base(text: str) -> int:
    """``development``, ``held-out`` or a number."""
    return SEED_BASES[text] if text in SEED_BASES else int(text)


def report_rows(name: str, result: dict[str, Any]) -> list[list[str]]:
    return [
        *(score.row(group) for group, score in result["groups"].items()),
        result["all"].row(f"{name}: all"),
    ]


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    return {
        **result["all"].summary(),
        "groups": {group: s.summary() for group, s in result["groups"].items()},
        "misses": result["misses"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--suite", choices=["photos", "classic", "both"], default="both")
    parser.add_argument("--count", type=int, help="receipts per suite (photos 80, classic 40)")
    parser.add_argument("--engines", default="rapidocr,doctr")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1000, help="the classic suite's first seed")
    parser.add_argument(
        "--seed-base",
        type=seed_base,
        default=receipt_photos.DEVELOPMENT_SEED_BASE,
        help="the photos suite's first seed: development (0), held-out (50000) or a number",
    )
    parser.add_argument("--printed", action="store_true", help="the parser on printed text")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    suites = build_suites(args, images=not args.printed)
    report: dict[str, Any] = {
        "suites": {s.name: {**s.seeds, "count": len(s.truths), "engines": {}} for s in suites}
    }
    tables = []
    if args.printed:
        from serve_app.ocr.receipts import ReceiptParser

        receipt_parser = ReceiptParser()
        for suite in suites:
            bodies = [
                {"receipt": asdict(receipt_parser.parse(printed_lines(t)))} for t in suite.truths
            ]
            result = score(suite.truths, bodies)
            report["suites"][suite.name]["engines"]["printed"] = as_json(result)
            print(f"\n{suite.name}: the parser on the printed text (no OCR)")
            tables.append(print_table(report_rows(suite.name, result), ROW_HEADER))
        return finish(out, report, tables)

    weights_dir = Settings().ocr_weights_path()
    for engine in args.engines.split(","):
        if engine == "doctr" and missing_by_name(
            weights_dir, "db_mobilenet_v3_large", "crnn_mobilenet_v3_small"
        ):
            why = f"could not run: no docTR weights in {weights_dir} (`serve-app weights download`)"
            print(f"doctr: {why}", flush=True)
            for suite in suites:
                report["suites"][suite.name]["engines"][engine] = {"skipped": why}
            tables.append(f"doctr: {why}")
            continue
        print(f"{engine}: serve-app run with engine {engine} ...", flush=True)
        env = {"SERVE_APP_API_TOKEN": TOKEN}
        server = this_server(None, config_for(engine, out), env, out / "logs" / f"{engine}.log")
        results = []
        try:
            server.wait_ready()
            asyncio.run(read_all(server.url, suites[0].photos[:2], 1))  # wake OCR from zero
            for suite in suites:
                started = time.perf_counter()
                bodies, seconds = asyncio.run(read_all(server.url, suite.photos, args.clients))
                results.append((suite, bodies, seconds, time.perf_counter() - started))
        finally:
            server.stop()
        for suite, bodies, seconds, elapsed in results:
            result = score(suite.truths, bodies, seconds)
            summary = as_json(result)
            summary["pages_per_s"] = len(suite.photos) / elapsed
            report["suites"][suite.name]["engines"][engine] = summary
            print(f"\n{suite.name}, {engine}: {summary['pages_per_s']:.2f} pages/s")
            tables.append(
                f"{suite.name}, {engine} ({summary['pages_per_s']:.2f} pages/s)\n"
                + print_table(report_rows(suite.name, result), ROW_HEADER)
            )
    return finish(out, report, tables)


def finish(out: Path, report: dict[str, Any], tables: list[str]) -> int:
    write_json(out / "receipts.json", report)
    (out / "receipts.md").write_text("```\n" + "\n\n".join(tables) + "\n```\n")
    print(f"\nwrote {out / 'receipts.json'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
