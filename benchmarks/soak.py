"""Mixed soak: embeddings, search, OCR and plans together for N minutes against one server.

Run ``python -m benchmarks.soak [--minutes 10]``; prints a table and writes
``benchmarks/results/<timestamp>/soak.json``. Passing means no errors (every answer 200) and
resident memory of the server's processes (serve-app, Ray's daemons, the replicas, the
embedded PostgreSQL) growing by less than 10% between the end of the warm-up and the end.
Run it with no other Ray cluster on the machine: it counts every Ray process.
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.cold_start import request_for
from benchmarks.harness.loadgen import print_table, write_json
from benchmarks.harness.servers import ROOT, Server, serve_cmd
from serve_app.net import free_port

PROCESS_MARKERS = ("serve_app.cli", "raylet", "gcs_server", "ray::", "haproxy", "bin/postgres")


def server_rss_mb() -> float:
    total = 0
    for proc in psutil.process_iter(["cmdline", "name", "memory_info"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["name"] or "")
            if any(marker in text for marker in PROCESS_MARKERS):
                total += proc.info["memory_info"].rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError):
            continue
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the baseline")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true", "SERVE_APP_API_TOKEN": ""}
    config = ROOT / "deployments" / "local.yaml"
    server = Server(serve_cmd(port, config), env, url, out / "soak-server.log")
    counts: dict[str, dict[int, int]] = {}
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def worker(kind: str, seed: int) -> None:
        client = httpx.Client(timeout=120)
        i = 0
        while not stop.is_set():
            if kind == "search":
                path, kwargs = "/v1/search", {"json": {"namespace": "soak", "query": f"oat {i}"}}
            elif kind == "documents":
                doc = {"id": f"d{seed}-{i % 500}", "text": f"grocery item {i}", "metadata": {}}
                path, kwargs = "/v1/documents", {"json": {"namespace": "soak", "documents": [doc]}}
            else:
                path, kwargs = request_for(kind)
            try:
                status = client.post(f"{url}{path}", **kwargs).status_code
            except httpx.HTTPError:
                status = 0
            with lock:
                counts.setdefault(kind, {}).setdefault(status, 0)
                counts[kind][status] += 1
            i += 1

    try:
        ready_s = server.wait_ready()
        print(f"ready in {ready_s:.1f} s; soaking for {args.minutes:g} min", flush=True)
        # the search workers need the namespace to exist (else 404 namespace_not_found)
        seed = {"namespace": "soak", "documents": [{"id": "seed", "text": "oat milk"}]}
        httpx.post(f"{url}/v1/documents", json=seed, timeout=120).raise_for_status()
        mix = [("embeddings", 3), ("search", 2), ("documents", 1), ("ocr", 1), ("solver", 1)]
        threads = [
            threading.Thread(target=worker, args=(kind, n), daemon=True)
            for kind, copies in mix
            for n in range(copies)
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        while time.monotonic() < end:
            samples.append((time.monotonic() - started, server_rss_mb()))
            done = sum(sum(c.values()) for c in counts.values())
            print(f"  {samples[-1][0]:5.0f} s  rss {samples[-1][1]:7.0f} MB  {done} requests",
                  flush=True)  # fmt: skip
            time.sleep(10)
        stop.set()
        for t in threads:
            t.join(180)
    finally:
        stop.set()
        server.stop()
    baseline = next((rss for t, rss in samples if t >= args.warmup), samples[0][1])
    final = samples[-1][1]
    growth = (final - baseline) / baseline * 100
    errors = {k: sum(n for s, n in c.items() if s != 200) for k, c in counts.items()}
    rows = [
        [kind, str(sum(c.values())), str(errors[kind]), str(dict(sorted(c.items())))]
        for kind, c in sorted(counts.items())
    ]
    print_table(rows, header=["requests", "count", "errors", "statuses"])
    print(f"rss after warm-up {baseline:.0f} MB, at the end {final:.0f} MB: {growth:+.1f}%")
    report: dict[str, Any] = {
        "minutes": args.minutes,
        "counts": counts,
        "errors": errors,
        "rss_samples_mb": samples,
        "rss_growth_percent": growth,
        "passed": sum(errors.values()) == 0 and growth < 10,
    }
    write_json(out / "soak.json", report)
    print(f"{'PASS' if report['passed'] else 'FAIL'}; wrote {out / 'soak.json'}")


if __name__ == "__main__":
    main()
