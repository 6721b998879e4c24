"""Receipt accuracy benchmark: synthetic receipts, photographed or scanned, read by the server.

Run ``python -m benchmarks.receipts [--count 40] [--engines rapidocr,doctr]``; prints a table
and writes JSON to ``benchmarks/results/<timestamp>/receipts.json``. The receipts and their
ground truth come from :mod:`benchmarks.data.receipt_data` (seeded); each goes through
``POST /v1/ocr`` of ``serve-app run`` (local.yaml, the OCR engine set per run) as a JPEG.
Per engine, with real weights only (docTR runs only when its weights are in the weights
directory; random weights would measure nothing):

  item F1        an item counts when its name matches loosely (similarity >= 0.8 after
                 dropping spaces and punctuation) and its total exactly, discounts and
                 deposits included
  exact totals   receipts whose total is the printed one, to the cent
  consistent     receipts the parser marks ``consistent`` (items add up)
  pages/s, p50   two clients in a closed loop over all receipts
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from rapidfuzz import fuzz

from benchmarks.data.receipt_data import TruthReceipt, receipt_photo
from benchmarks.harness.loadgen import print_table, write_json
from benchmarks.harness.servers import ROOT, this_server
from serve_app.ocr.weights import missing_by_name
from serve_app.settings import Settings

TOKEN = "receipts-token-0123456789"


def normalised(name: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", name.upper())


def match_items(truth: TruthReceipt, found: list[dict[str, Any]]) -> int:
    """Truth items matched one to one by an exact total and a loosely equal name."""
    unmatched = list(found)
    matched = 0
    for item in truth.items:
        for candidate in unmatched:
            same_total = Decimal(str(candidate["total"])) == item.total
            if (
                same_total
                and fuzz.ratio(normalised(item.name), normalised(candidate["name"])) >= 80
            ):
                unmatched.remove(candidate)
                matched += 1
                break
    return matched


def config_for(engine: str, out: Path) -> Path:
    raw = yaml.safe_load((ROOT / "deployments" / "local.yaml").read_text())
    for deployment in raw["applications"][0]["deployments"]:
        if deployment["name"] == "ocr":
            deployment["user_config"]["engine"] = engine
    path = out / f"local-{engine}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def read_all(url: str, photos: list[bytes], clients: int) -> tuple[list[Any], list[float]]:
    """Every photo through /v1/ocr by ``clients`` in a closed loop; bodies and latencies."""
    results: list[Any] = [None] * len(photos)
    latencies: list[float] = []
    queue = list(range(len(photos)))
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
                    latencies.append(time.perf_counter() - started)
                    results[i] = r.json() if r.status_code == 200 else {"error": r.text}
                    break

        await asyncio.gather(*(worker() for _ in range(clients)))
    return results, latencies


def score(truths: list[TruthReceipt], bodies: list[Any]) -> dict[str, Any]:
    truth_items = found_items = matched = exact_totals = consistent = 0
    misses = []
    for truth, body in zip(truths, bodies, strict=True):
        receipt = (body or {}).get("receipt") or {}
        items = receipt.get("items") or []
        hit = match_items(truth, items)
        truth_items += len(truth.items)
        found_items += len(items)
        matched += hit
        total_ok = (
            receipt.get("total") is not None and Decimal(str(receipt["total"])) == truth.total
        )
        exact_totals += total_ok
        consistent += bool(receipt.get("consistent"))
        if hit < len(truth.items) or not total_ok:
            misses.append(
                {
                    "seed": truth.seed,
                    "matched": hit,
                    "items": len(truth.items),
                    "total_ok": total_ok,
                    "text": (body or {}).get("text", "")[:2000],
                }
            )
    precision = matched / found_items if found_items else 0.0
    recall = matched / truth_items if truth_items else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "receipts": len(truths),
        "items": truth_items,
        "item_precision": precision,
        "item_recall": recall,
        "item_f1": f1,
        "exact_totals": exact_totals / len(truths),
        "consistent": consistent / len(truths),
        "misses": misses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--count", type=int, default=40, help="receipts (at least 40)")
    parser.add_argument("--engines", default="rapidocr,doctr")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(f"rendering {args.count} receipts (photos and thermal scans) ...", flush=True)
    generated = [receipt_photo(args.seed + i) for i in range(args.count)]
    truths = [t for t, _ in generated]
    photos = [p for _, p in generated]
    report: dict[str, Any] = {"count": args.count, "seed": args.seed, "engines": {}}
    weights_dir = Settings().ocr_weights_path()
    rows = []
    for engine in args.engines.split(","):
        if engine == "doctr" and missing_by_name(
            weights_dir, "db_mobilenet_v3_large", "crnn_mobilenet_v3_small"
        ):
            why = f"could not run: no docTR weights in {weights_dir} (`serve-app weights download`)"
            print(f"doctr: {why}", flush=True)
            report["engines"][engine] = {"skipped": why}
            rows.append([engine, "-", "-", "-", "-", "-", why])
            continue
        print(f"{engine}: serve-app run with engine {engine} ...", flush=True)
        env = {"SERVE_APP_API_TOKEN": TOKEN}
        server = this_server(None, config_for(engine, out), env, out / "logs" / f"{engine}.log")
        try:
            server.wait_ready()
            asyncio.run(read_all(server.url, photos[:2], 1))  # wake OCR from zero replicas
            started = time.perf_counter()
            bodies, latencies = asyncio.run(read_all(server.url, photos, args.clients))
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
        result = score(truths, bodies)
        result["pages_per_s"] = args.count / elapsed
        result["p50_s"] = statistics.median(latencies)
        report["engines"][engine] = result
        rows.append(
            [
                engine,
                f"{result['item_f1']:.3f}",
                f"{100 * result['exact_totals']:.0f}%",
                f"{100 * result['consistent']:.0f}%",
                f"{result['pages_per_s']:.2f}",
                f"{result['p50_s']:.2f}",
                f"{result['items']} items, P {result['item_precision']:.3f} "
                f"R {result['item_recall']:.3f}",
            ]
        )
    print()
    header = ["engine", "item F1", "exact total", "consistent", "pages/s", "p50 s", "notes"]
    table = print_table(rows, header)
    write_json(out / "receipts.json", report)
    (out / "receipts.md").write_text("```\n" + table + "\n```\n")
    print(f"\nwrote {out / 'receipts.json'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
