"""OCR benchmark: raw predictor vs per-request server vs this server, on synthetic receipts.

Run ``python -m benchmarks.ocr [--quick]``; prints a table and writes JSON to
``benchmarks/results/<timestamp>/ocr.json``. All three read with the OCR deployment's
default engine (rapidocr with its packaged weights; the server's config names it too), said in
the output and the JSON. Random docTR weights are allowed
(``SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS=true``, which the brief allows for benchmarks) for a run
that names ``engine: doctr`` without weights.

  (a) raw     the runtime's read() in-process at its best batch size (pages/s); also, for
              comparison with (c)'s CPU setting, 2 pages at once on 1 torch thread each
  (b) plain   benchmarks.harness.baseline_ocr_server: the predictor once per request, no batching
  (c) serve   ``serve-app run`` (default config, HAProxy ingress)
at concurrency 1, 4, 16 with receipt images of about 1000 x 2500 pixels. Clients wait for
``Retry-After`` when answered 503, as the web app's does; items/s counts pages answered 200
(goodput), and the summary compares goodput at the highest concurrency with that at 4.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.harness.loadgen import LoadResult, closed_loop, print_table, write_json
from benchmarks.harness.servers import ROOT, Server, this_server
from serve_app.net import free_port

RANDOM_WEIGHTS = {"SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true"}


def receipt_image(seed: int, width: int = 1000, height: int = 2500) -> np.ndarray:
    """A long grocery receipt with about 60 lines of text."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    items = ["MILK 2% 1GAL", "BANANAS", "SOURDOUGH", "EGGS 12PK", "RICE 1KG", "OAT MILK"]
    y = 60
    draw.text((300, y), "FRESH MART #042", fill="black", font=font)
    while y < height - 120:
        y += 38
        name = rng.choice(items)
        draw.text((60, y), name, fill="black", font=font)
        draw.text((760, y), f"{rng.uniform(0.5, 12):6.2f} A", fill="black", font=font)
    draw.text((60, height - 80), "TOTAL", fill="black", font=font)
    return np.asarray(image)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def bench_raw(
    pages: list[np.ndarray], seconds: float, batches=(1, 2, 4, 8), parallel: int = 2
) -> dict[str, Any]:
    """(a): the predictor in-process at each batch size (torch on every core), and, for
    comparison with this server's CPU setting, ``parallel`` threads of batch 1 with one torch
    thread each."""
    import threading

    import torch

    from serve_app.ocr.config import OcrConfig
    from serve_app.ocr.runtime import build_runtime
    from serve_app.settings import get_settings

    runtime = build_runtime(OcrConfig(), get_settings())  # the deployment's defaults
    runtime.read(pages[:1])
    sweep = {}
    print(f"  engine {runtime.engine}", flush=True)
    print(f"  device {runtime.device}, torch threads {torch.get_num_threads()}", flush=True)
    for batch in batches:
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            runtime.read([pages[(done + i) % len(pages)] for i in range(batch)])
            done += batch
        sweep[batch] = done / (time.perf_counter() - started)
        print(f"  raw batch {batch}: {sweep[batch]:.2f} pages/s", flush=True)
    best = max(sweep, key=sweep.__getitem__)
    report = {
        "engine": runtime.engine,
        "device": runtime.device,
        "pages_per_s_by_batch": sweep,
        "best_batch": best,
        "best_pages_per_s": sweep[best],
    }
    if parallel > 1 and runtime.device == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        counts = [0] * parallel
        stop = time.perf_counter() + seconds

        def work(i: int) -> None:
            while time.perf_counter() < stop:
                runtime.read([pages[(counts[i] + i) % len(pages)]])
                counts[i] += 1

        workers = [threading.Thread(target=work, args=(i,)) for i in range(parallel)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rate = sum(counts) / (time.perf_counter() - started)
        torch.set_num_threads(threads)
        report["parallel"] = {"threads": parallel, "pages_per_s": rate}
        print(f"  raw, {parallel} pages at once on 1 thread each: {rate:.2f} pages/s", flush=True)
    return report


def run_points(target: str, url: str, bodies: list[bytes], levels, seconds: float):
    results = []
    for concurrency in levels:
        result = asyncio.run(
            closed_loop(
                f"{url}/v1/ocr",
                lambda i: (bodies[i % len(bodies)], "image/png"),
                1,
                concurrency,
                seconds,
                warmup_s=2.0,
                target=target,
                scenario="page",
                timeout_s=300,
                # as the web app's client does: a page refused with 503 comes back after
                # Retry-After (the server refuses what it cannot read before the timeout)
                honour_retry_after=True,
            )
        )
        print_table([result.row()])
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--targets", default="raw,plain,serve")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "deployments" / "local.yaml",
        help="Serve config for (c); deployments/gpu.yaml on a GPU machine",
    )
    parser.add_argument(
        "--raw-batches", default="1,2,4,8", help="batch sizes for (a); e.g. 1,4,16,32 on a GPU"
    )
    parser.add_argument("--levels", default="1,4,16", help="concurrency levels for (b) and (c)")
    parser.add_argument(
        "--url",
        help="measure this running server as (c) instead of starting one (it must "
        "allow random OCR weights, as the suite's shared server does)",
    )
    args = parser.parse_args()
    seconds = args.duration or (10.0 if args.quick else 20.0)
    levels = tuple(int(c) for c in args.levels.split(","))
    targets = args.targets.split(",")
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    pages = [receipt_image(seed) for seed in range(4)]
    bodies = [png(p) for p in pages]
    os.environ.update(RANDOM_WEIGHTS)
    report: dict[str, Any] = {
        "duration_s": seconds,
        "image": "1000x2500 PNG",
        "weights": "the engine's (see raw.engine)",
    }
    results: list[LoadResult] = []
    if "raw" in targets:
        print("(a) raw predictor in-process", flush=True)
        batches = tuple(int(b) for b in args.raw_batches.split(","))
        report["raw"] = bench_raw(pages, seconds / 2, batches)
    if "plain" in targets:
        print("(b) plain server, predictor once per request", flush=True)
        port = free_port()
        cmd = [sys.executable, "-m", "benchmarks.harness.baseline_ocr_server", "--port", str(port)]
        server = Server(cmd, {}, f"http://127.0.0.1:{port}", out / "logs" / "plain-ocr.log")
        try:
            server.wait_ready()
            results += run_points("plain", server.url, bodies, levels, seconds)
        finally:
            server.stop()
    if "serve" in targets:
        print("(c) this server" + (f" at {args.url}" if args.url else ""), flush=True)
        server = this_server(args.url, args.config, {}, out / "logs" / "serve-ocr.log")
        try:
            server.wait_ready()
            results += run_points("serve", server.url, bodies, levels, seconds)
        finally:
            server.stop()
    report["results"] = results
    print()
    table = print_table([r.row() for r in results])
    raw = report.get("raw", {}).get("best_pages_per_s")
    lines = []
    if raw:
        lines.append(f"raw ceiling: {raw:.2f} pages/s at batch {report['raw']['best_batch']}")
    parallel = report.get("raw", {}).get("parallel", {}).get("pages_per_s")
    if parallel:
        lines.append(f"raw, 2 pages at once on 1 thread each: {parallel:.2f} pages/s")
    for r in results:
        if r.concurrency == 4 and raw:
            share = 100 * r.items_per_s / raw
            line = f"{r.target} c4: {r.items_per_s:.2f} pages/s = {share:.0f}% of raw"
            if parallel:
                line += f" ({100 * r.items_per_s / parallel:.0f}% of raw 2 at once)"
            lines.append(line)
    for target in dict.fromkeys(r.target for r in results):
        mine = {r.concurrency: r for r in results if r.target == target}
        top = max(mine)
        if 4 in mine and top > 4 and mine[4].items_per_s:
            ratio = mine[top].items_per_s / mine[4].items_per_s
            lines.append(
                f"{target} goodput c{top}/c4: {ratio:.2f} "
                f"({mine[top].items_per_s:.2f} / {mine[4].items_per_s:.2f} pages/s; "
                f"c{top} statuses {mine[top].status_counts})"
            )
    for line in lines:
        print(line)
    report["summary"] = lines
    write_json(out / "ocr.json", report)
    (out / "ocr.md").write_text("```\n" + table + "\n```\n\n" + "\n".join(f"- {x}" for x in lines))
    print(f"\nwrote {out / 'ocr.json'}")


if __name__ == "__main__":
    main()
