"""Cold start from zero replicas, per model, for a Serve config (default deployments/fly.yaml).

Run ``python -m benchmarks.cold_start [--config deployments/fly.yaml] [--models ocr,solver]``;
prints a table and writes JSON to ``benchmarks/results/<timestamp>/cold_start.json``.

It starts ``serve-app run`` with the config (CPU shares scaled to this machine, short
downscale delays, no document store), measures the time to ready, waits until each measured
model has scaled to zero, then times its first request (Ray starts a replica process, the
model loads, the request runs) against the same request warm, and records the /health
timeline of the component while it comes back. Models whose config has ``min_replicas: 0``
are measured by default, or every model where none has (fly.yaml keeps each warm: this is
the wait that saves). OCR reads with the engine the config names (rapidocr in fly.yaml), as
``serve-app run`` prints at start.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.harness.loadgen import print_table, write_json
from benchmarks.harness.servers import ROOT, this_server


def request_for(model: str) -> tuple[str, dict[str, Any]]:
    """(path, httpx keyword arguments) of one typical request to ``model``."""
    if model == "embeddings":
        return "/v1/embeddings", {"json": {"input": ["oat milk", "Oatly barista edition"]}}
    if model == "ocr":
        from benchmarks.ocr import png, receipt_image

        body = png(receipt_image(1, width=600, height=1200))
        return "/v1/ocr", {"content": body, "headers": {"Content-Type": "image/png"}}
    if model == "solver":
        from benchmarks.data.plan_data import week_request

        return "/v1/plans", {"json": week_request(20, seed=1, days=3, timeout_ms=5000)}
    raise ValueError(f"unknown model {model}")


def scale_to_zero_quickly(deployment: dict[str, Any]) -> None:
    """Make a deployment of a Serve config autoscale to zero replicas within seconds."""
    deployment.pop("num_replicas", None)
    scaling = deployment.setdefault("autoscaling_config", {})
    scaling.update(
        min_replicas=0,
        initial_replicas=1,
        max_replicas=max(1, scaling.get("max_replicas", 1)),
        downscale_delay_s=1,
        downscale_to_zero_delay_s=2,
        # as gpu.yaml's deployments at zero: Serve decides to add a replica within a second
        # of a request (its defaults look back 30 s, with metrics every 10 s)
        look_back_period_s=2,
        metrics_interval_s=0.5,
    )


def bench_config(path: Path, models: list[str], cores: int) -> Path:
    raw = yaml.safe_load(path.read_text())
    app = raw["applications"][0]
    app.setdefault("args", {})["store"] = False  # the database is not what is measured
    total = sum(d.get("ray_actor_options", {}).get("num_cpus", 1) for d in app["deployments"])
    scale = min(1.0, cores / total)
    for deployment in app["deployments"]:
        options = deployment.setdefault("ray_actor_options", {})
        options["num_cpus"] = round(options.get("num_cpus", 1) * scale, 3)
        options.pop("num_gpus", None)
        if deployment["name"] in models:
            scale_to_zero_quickly(deployment)
    out = Path(tempfile.mkdtemp()) / "cold.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def status_of(url: str, model: str) -> str:
    try:
        body = httpx.get(f"{url}/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return "unreachable"
    return body.get("components", {}).get(model, {}).get("status", "missing")


def wait_status(url: str, model: str, wanted: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if status_of(url, model) == wanted:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{model} never reached {wanted}")


def cold_start(url: str, model: str, headers: dict[str, str]) -> dict[str, Any]:
    path, kwargs = request_for(model)
    kwargs["headers"] = {**headers, **kwargs.get("headers", {})}
    wait_status(url, model, "scaled_to_zero")
    timeline: list[tuple[float, str]] = []
    done = threading.Event()
    started = time.perf_counter()

    def watch() -> None:
        last = None
        while not done.is_set():
            status = status_of(url, model)
            if status != last:
                timeline.append((round(time.perf_counter() - started, 2), status))
                last = status
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    response = httpx.post(f"{url}{path}", timeout=300, **kwargs)
    cold_s = time.perf_counter() - started
    done.set()
    watcher.join()
    response.raise_for_status()
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        httpx.post(f"{url}{path}", timeout=120, **kwargs).raise_for_status()
        warm.append(time.perf_counter() - t0)
    warm_s = sorted(warm)[1]
    return {
        "cold_request_s": cold_s,
        "warm_request_s": warm_s,
        "cold_start_s": cold_s - warm_s,
        "health_timeline": timeline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--config", default="deployments/fly.yaml")
    parser.add_argument("--models", help="comma-separated (default: the config's min 0 ones)")
    parser.add_argument("--out", default=None, help="results folder")
    parser.add_argument(
        "--url",
        help="a running server whose --models already scale to zero (the suite's shared "
        "server): measure their first request there instead of starting one",
    )
    args = parser.parse_args()
    if args.url and not args.models:
        parser.error("--url needs --models")

    config_path = ROOT / args.config
    raw = yaml.safe_load(config_path.read_text())
    if args.models:
        models = args.models.split(",")
    else:
        models = [
            d["name"]
            for d in raw["applications"][0]["deployments"]
            if d.get("autoscaling_config", {}).get("min_replicas") == 0
        ] or ["ocr", "solver", "embeddings"]
    cores = os.cpu_count() or 2
    config = bench_config(config_path, models, cores)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    if args.url:
        print(f"measuring the running server at {args.url}", flush=True)
    else:
        print(f"starting serve-app run --config {args.config} ({cores} cores) ...", flush=True)
    env = {"SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true", "SERVE_APP_API_TOKEN": ""}
    server = this_server(args.url, config, env, out / "cold-start-server.log")
    url = server.url
    report: dict[str, Any] = {
        "config": "the suite's shared server" if args.url else args.config,
        "cores": cores,
        "models": {},
    }
    try:
        ready_s = server.wait_ready()
        if not args.url:
            report["ready_s"] = ready_s
            print(f"ready {ready_s:.1f} s after start", flush=True)
        for model in models:
            print(f"{model}: waiting for zero replicas, then the first request ...", flush=True)
            report["models"][model] = cold_start(url, model, {})
    finally:
        server.stop()
    rows = [
        [
            model,
            f"{r['cold_request_s']:.2f} s",
            f"{r['warm_request_s']:.3f} s",
            f"{r['cold_start_s']:.2f} s",
            " -> ".join(f"{s}@{t}s" for t, s in r["health_timeline"]),
        ]
        for model, r in report["models"].items()
    ]
    if "ready_s" in report:
        print(f"\nready after start: {report['ready_s']:.1f} s")
    print_table(
        rows, header=["model", "first request", "warm request", "cold start", "health timeline"]
    )
    write_json(out / "cold_start.json", report)
    print(f"wrote {out / 'cold_start.json'}")


if __name__ == "__main__":
    main()
