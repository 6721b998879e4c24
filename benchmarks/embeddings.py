"""Embeddings benchmark: raw runtime vs plain FastAPI vs this server vs Infinity.

Run ``python -m benchmarks.embeddings [--quick]``; prints a table and writes JSON to
``benchmarks/results/<timestamp>/embeddings.json``.

Targets, all in one run on the same machine:
  (a) raw         EmbeddingRuntime in-process (ONNX Runtime) at its best batch size (the
                  ceiling); also two batches at once on one thread each (parallel_batches: 2)
      raw-torch   the same on the torch engine (sentence-transformers' modules, fp32)
  (b) plain       one uvicorn process, one model call per request, the same ONNX Runtime
                  (benchmarks.harness.baseline_server)
  (c) serve-ha    ``serve-app run`` (local.yaml) with the HAProxy ingress (the default)
      serve       the same with Ray's Python proxy (``SERVE_APP_PROXY=python``)
      serve-torch serve-ha with ``SERVE_APP_EMBEDDINGS_ENGINE=torch`` (the engine before/after)
  (d) infinity    Infinity (``infinity-emb``, torch engine, its own venv:
                  benchmarks/harness/infinity.py), the peer a user would otherwise pick
Also measured: time from ``serve-app run`` to ready, and cold start from zero replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.harness import infinity
from benchmarks.harness.loadgen import (
    LoadResult,
    closed_loop,
    print_table,
    scrape_histogram,
    write_json,
)
from benchmarks.harness.servers import ROOT, Server, serve_cmd, this_server
from serve_app.net import free_port

ADJECTIVES = ["organic", "fresh", "frozen", "low-fat", "smoked", "wholegrain", "vegan", "salted"]
ITEMS = [
    "oat milk", "cheddar cheese", "sourdough bread", "chicken thighs", "basmati rice",
    "baby spinach", "greek yoghurt", "olive oil", "chickpeas", "tomato passata",
    "salmon fillets", "rolled oats", "peanut butter", "free-range eggs", "bananas",
]  # fmt: skip


def grocery_texts(n: int, seed: int = 7) -> list[str]:
    """Realistic short grocery texts (about 6-12 tokens each), seeded."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(ADJECTIVES)} {rng.choice(ITEMS)} {rng.randint(1, 5)} x "
        f"{rng.choice([250, 500, 1000])} g, aisle {rng.randint(1, 30)}"
        for _ in range(n)
    ]


TEXTS = grocery_texts(4096)


def scenarios(quick: bool) -> list[tuple[str, int, int]]:
    """(name, texts per request, concurrency)."""
    single = [1, 8, 32] if quick else [1, 8, 32, 64]
    return [("bulk32", 32, 4)] + [("single", 1, c) for c in single]


def body_for(texts_per_request: int):
    def make(i: int) -> dict[str, Any]:
        start = (i * texts_per_request) % (len(TEXTS) - texts_per_request)
        chunk = TEXTS[start : start + texts_per_request]
        return {"input": chunk if texts_per_request > 1 else chunk[0]}

    return make


# --- (a) raw runtime --------------------------------------------------------------------


def bench_raw(duration_s: float, engine: str = "onnxruntime") -> dict[str, Any]:
    """The runtime alone, one batch after another on every core (the ceiling), and two
    batches at once on one thread each (what ``parallel_batches: 2`` does)."""
    from serve_app.embeddings.runtime import EmbeddingRuntime

    runtime = EmbeddingRuntime(engine=engine)
    runtime.embed(TEXTS[:64])
    cores = len(os.sched_getaffinity(0))

    def threads(n: int) -> None:
        """``n`` threads for the batches that start now (ONNX Runtime: a session's, made
        anew; torch: the calling thread's)."""
        if engine == "torch":
            import torch

            torch.set_num_threads(n)
        else:
            runtime.set_threads(n)

    def pace(batch: int, streams: int) -> float:
        done = [0] * streams
        stop = time.perf_counter() + duration_s

        def stream(k: int) -> None:
            if engine == "torch":  # torch's threads are the calling thread's
                threads(max(1, cores // streams))
            i = k * 1000
            while time.perf_counter() < stop:
                start = (i * 7) % (len(TEXTS) - batch)
                runtime.embed(TEXTS[start : start + batch])
                done[k] += batch
                i += 1

        started = time.perf_counter()
        workers = [threading.Thread(target=stream, args=(k,)) for k in range(streams)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return sum(done) / (time.perf_counter() - started)

    threads(cores)
    sweep = {}
    for batch in (1, 8, 32, 64, 128, 256):
        sweep[batch] = pace(batch, 1)
        print(f"  raw {engine} batch {batch:>3}: {sweep[batch]:.1f} texts/s", flush=True)
    best = max(sweep, key=sweep.__getitem__)
    threads(max(1, cores // 2))  # each of the two streams on its share
    parallel = {}
    for batch in (32, 64, 128):
        parallel[batch] = pace(batch, 2)
        print(f"  raw {engine} 2 at once x 1 thread, batch {batch:>3}: {parallel[batch]:.1f}")
    best_parallel = max(parallel, key=parallel.__getitem__)
    return {
        "engine": runtime.encoder.engine,
        "texts_per_s_by_batch": sweep,
        "best_batch": best,
        "best_texts_per_s": sweep[best],
        "two_streams_texts_per_s_by_batch": parallel,
        "two_streams_best_batch": best_parallel,
        "two_streams_best_texts_per_s": parallel[best_parallel],
    }


def run_scenarios(
    target: str, url: str, quick: bool, duration_s: float, metrics: bool
) -> list[LoadResult]:
    results = []
    for name, per_request, concurrency in scenarios(quick):
        before = httpx.get(f"{url}/metrics", timeout=10).text if metrics else ""
        result = asyncio.run(
            closed_loop(
                f"{url}/v1/embeddings",
                body_for(per_request),
                per_request,
                concurrency,
                duration_s,
                warmup_s=1.0,
                target=target,
                scenario=f"{name}",
            )
        )
        if metrics:
            after = httpx.get(f"{url}/metrics", timeout=10).text
            s0, c0 = scrape_histogram(before, "serve_app_batch_items", "embeddings")
            s1, c1 = scrape_histogram(after, "serve_app_batch_items", "embeddings")
            result.mean_batch_size = (s1 - s0) / (c1 - c0) if c1 > c0 else None
        print_table([result.row()])
        results.append(result)
    return results


def bench_serve(
    target: str,
    env: dict[str, str],
    quick: bool,
    duration_s: float,
    logs: Path,
    attach: str | None = None,
):
    local = ROOT / "deployments" / "local.yaml"
    server = this_server(attach, local, env, logs / f"{target}.log")
    try:
        ready_s = server.wait_ready()
        if not attach:
            print(f"{target}: ready {ready_s:.1f} s after start", flush=True)
        results = run_scenarios(target, server.url, quick, duration_s, metrics=True)
    finally:
        server.stop()
    return ready_s, results


def bench_infinity(quick: bool, duration_s: float, logs: Path) -> tuple[float, list[LoadResult]]:
    """Infinity serving the same model directory on the CPU, started in its own venv."""
    from serve_app.embeddings.model_files import default_model_dir

    python = infinity.ensure_venv(lambda line: print(f"  {line}", flush=True))
    port = free_port()
    cmd, env = infinity.infinity_command(python, default_model_dir(), port)
    server = Server(cmd, env, f"http://127.0.0.1:{port}", logs / "infinity.log")
    try:
        ready_s = server.wait_ready()
        print(f"infinity: ready {ready_s:.1f} s after start", flush=True)
        return ready_s, run_scenarios("infinity", server.url, quick, duration_s, metrics=False)
    finally:
        server.stop()


def bench_cold_start(logs: Path) -> dict[str, float]:
    """Embeddings that scale to zero (local.yaml with min_replicas 0 and short delays): the
    first request's time at zero replicas, and the next one's."""
    raw = yaml.safe_load((ROOT / "deployments" / "local.yaml").read_text())
    for deployment in raw["applications"][0]["deployments"]:
        if deployment["name"] == "embeddings":
            deployment["autoscaling_config"].update(
                min_replicas=0, downscale_delay_s=1, downscale_to_zero_delay_s=2
            )
            deployment["autoscaling_config"].pop("initial_replicas", None)
    config = Path(tempfile.mkdtemp()) / "zero.yaml"
    config.write_text(yaml.safe_dump(raw))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(serve_cmd(port, config), {}, url, logs / "cold-start.log")
    try:
        ready_s = server.wait_ready()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = httpx.get(f"{url}/health", timeout=10).json()
            if body["components"]["embeddings"]["status"] == "scaled_to_zero":
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("embeddings never scaled to zero")
        started = time.perf_counter()
        response = httpx.post(f"{url}/v1/embeddings", json={"input": "cold"}, timeout=120)
        cold_s = time.perf_counter() - started
        response.raise_for_status()
        started = time.perf_counter()
        httpx.post(f"{url}/v1/embeddings", json={"input": "warm"}, timeout=60).raise_for_status()
        warm_s = time.perf_counter() - started
    finally:
        server.stop()
    return {"ready_s": ready_s, "cold_request_s": cold_s, "warm_request_s": warm_s}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer points")
    parser.add_argument("--duration", type=float, help="seconds per load point")
    parser.add_argument(
        "--targets",
        default="raw,raw-torch,plain,serve-ha,serve-torch,infinity,cold",
        help="comma-separated subset (also: serve, Ray's Python proxy)",
    )
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument(
        "--url",
        help="measure this running server (started with the default proxy) as serve-ha "
        "instead of starting one; no ready time",
    )
    args = parser.parse_args()
    duration = args.duration or (4.0 if args.quick else 10.0)
    targets = args.targets.split(",")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "benchmarks" / "results" / stamp
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"duration_s": duration, "cpus": os.cpu_count(), "targets": targets}
    results: list[LoadResult] = []

    if "raw" in targets:
        print("(a) raw runtime in-process, ONNX Runtime", flush=True)
        report["raw"] = bench_raw(duration / 2)
    if "raw-torch" in targets:
        print("(a) raw runtime in-process, torch", flush=True)
        report["raw_torch"] = bench_raw(duration / 2, "torch")
    if "plain" in targets:
        print("(b) plain FastAPI + uvicorn, no cross-request batching", flush=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "benchmarks.harness.baseline_server", "--port", str(port)]
        server = Server(cmd, {}, url, logs / "plain.log")
        try:
            server.wait_ready()
            results += run_scenarios("plain", url, args.quick, duration, metrics=False)
        finally:
            server.stop()
    report["ready_s"] = {}
    servers = (
        ("serve", {"SERVE_APP_PROXY": "python"}),
        ("serve-ha", {"SERVE_APP_PROXY": "haproxy"}),
        ("serve-torch", {"SERVE_APP_PROXY": "haproxy", "SERVE_APP_EMBEDDINGS_ENGINE": "torch"}),
    )
    for target, env in servers:
        if target in targets and (target == "serve-ha" or not args.url):
            print(f"(c) {target}" + (f" at {args.url}" if args.url else ""), flush=True)
            ready_s, found = bench_serve(target, env, args.quick, duration, logs, args.url)
            if not args.url:
                report["ready_s"][target] = ready_s
            results += found
    if "infinity" in targets:
        print("(d) infinity", flush=True)
        report["ready_s"]["infinity"], found = bench_infinity(args.quick, duration, logs)
        results += found
    if "cold" in targets:
        print("cold start from zero replicas", flush=True)
        report["cold_start"] = bench_cold_start(logs)
        print(f"  {report['cold_start']}", flush=True)

    report["results"] = results
    report["summary"] = summarise(report, results)
    print()
    table = print_table([r.row() for r in results])
    for line in report["summary"]["lines"]:
        print(line)
    write_json(out / "embeddings.json", report)
    (out / "embeddings.md").write_text(
        "```\n" + table + "\n```\n\n" + "\n".join(f"- {x}" for x in report["summary"]["lines"])
    )
    print(f"\nwrote {out / 'embeddings.json'}")


def summarise(report: dict[str, Any], results: list[LoadResult]) -> dict[str, Any]:
    def find(target: str, scenario: str, concurrency: int) -> LoadResult | None:
        for r in results:
            if (r.target, r.scenario, r.concurrency) == (target, scenario, concurrency):
                return r
        return None

    def ratio(name: str, target: str, base: str, scenario: str, concurrency: int) -> None:
        """``target`` against ``base`` at one load point, in texts/s."""
        ours, theirs = find(target, scenario, concurrency), find(base, scenario, concurrency)
        if ours and theirs and theirs.items_per_s:
            lines.append(
                f"{name} {scenario} c{concurrency}: {ours.items_per_s:.0f} vs "
                f"{theirs.items_per_s:.0f} texts/s = {ours.items_per_s / theirs.items_per_s:.2f}x"
            )

    lines = []
    for key, label in (("raw", "raw ONNX Runtime"), ("raw_torch", "raw torch")):
        raw = report.get(key)
        if raw:
            lines.append(
                f"{label} ceiling: {raw['best_texts_per_s']:.0f} texts/s at batch "
                f"{raw['best_batch']}; 2 batches at once: {raw['two_streams_best_texts_per_s']:.0f}"
            )
    ceiling = report.get("raw", {}).get("best_texts_per_s")
    bulk = find("serve-ha", "bulk32", 4)
    if bulk and ceiling:
        lines.append(f"serve-ha bulk32 c4: {100 * bulk.items_per_s / ceiling:.0f}% of raw")
    # the engine: ONNX Runtime against torch, both through the server
    ratio(
        "ONNX Runtime / torch engine, through the server:", "serve-ha", "serve-torch", "bulk32", 4
    )
    ratio(
        "ONNX Runtime / torch engine, through the server:", "serve-ha", "serve-torch", "single", 32
    )
    # the peer
    for concurrency in (1, 8, 32, 64):
        ratio("server / Infinity:", "serve-ha", "infinity", "single", concurrency)
    ratio("server / Infinity:", "serve-ha", "infinity", "bulk32", 4)
    # the plain process on the same runtime
    for concurrency in (1, 32):
        ratio("server / plain:", "serve-ha", "plain", "single", concurrency)
    for target, seconds in report.get("ready_s", {}).items():
        lines.append(f"{target}: start -> ready in {seconds:.1f} s")
    if "cold_start" in report:
        cold = report["cold_start"]["cold_request_s"]
        lines.append(f"cold start, first request at 0 replicas: {cold:.2f} s")
    return {"lines": lines}


if __name__ == "__main__":
    main()
