"""Every benchmark in one run: ``make bench`` (or ``python -m benchmarks.harness.suite [--quick]``).

Runs the embeddings, OCR, search, cold-start, meal-plan, receipt-accuracy and wake benchmarks
one after another (never two at once, so they do not compete for the CPU), with a progress
bar, and writes
``benchmarks/results/<timestamp>/``: each benchmark's JSON and log, ``summary.md`` (one table
per benchmark) and PNG plots:

* ``throughput.png``   requests/s against concurrency, per target (server and baselines)
* ``latency.png``      latency distribution (p50/p95/p99) per target at its highest load
* ``batches.png``      mean batch size the server formed, per load point
* ``cold_start.png``   the cold-start timeline from zero replicas, per model

The full run lets each benchmark start the server configuration it measures (the search
benchmark a fresh database, the cold start ``deployments/fly.yaml``). ``--quick`` (under 5
minutes on 2 cores) starts one server for the benchmarks that measure a running server
(``deployments/local.yaml`` with the solver scaling to zero, so the cold-start benchmark finds
it at zero replicas), stops it, then runs those that start their own (plans in process,
receipts, wake) and shortens every run; ``--config`` names another base for that server
(``benchmarks/gpu/gpu.sh`` passes ``deployments/gpu.yaml``); ``--only a,b`` picks benchmarks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from benchmarks.cold_start import scale_to_zero_quickly
from benchmarks.harness.loadgen import HEADER, LoadResult
from benchmarks.harness.servers import Server, serve_cmd
from serve_app.net import free_port

ROOT = Path(__file__).resolve().parents[2]
CPSAT_VENV = ROOT / "benchmarks" / ".venv-ortools"
DEFAULT_CONFIG = ROOT / "deployments" / "local.yaml"


# Benchmarks that use the quick run's shared server (``--url``); the others start what they
# measure, after the shared server has stopped.
SHARED = {"embeddings", "ocr", "search", "cold_start"}


def plan(quick: bool, url: str = "URL", data: str = "DIR") -> list[tuple[str, list[str]]]:
    """(name, arguments of ``python -m benchmarks.<name>``) in run order; ``url`` and
    ``data`` are the quick run's shared server and its data directory."""
    no_cpsat = [] if (CPSAT_VENV / "bin" / "python").exists() else ["--no-cpsat"]
    if quick:
        return [
            ("embeddings", ["--quick", "--duration", "3", "--targets", "raw,plain,serve-ha",
                            "--url", url]),
            ("ocr", ["--quick", "--duration", "5", "--levels", "1,4", "--raw-batches", "1,4",
                     "--url", url]),
            ("search", ["--docs", "2000", "--queries", "50", "--ef", "100", "--url", url,
                        "--data-dir", data]),
            ("cold_start", ["--models", "solver", "--url", url]),
            ("plans", ["--sizes", "20,50", "--timeout", "5", *no_cpsat]),
            ("receipts", ["--count", "10"]),
            ("wake", ["--targets", "plain,serve"]),
        ]  # fmt: skip
    return [
        ("embeddings", []),
        ("ocr", []),
        ("search", []),
        ("cold_start", []),
        ("plans", ["--timeout", "20", *no_cpsat]),
        ("receipts", []),
        ("wake", []),
    ]


def shared_config(out: Path, base: Path) -> Path:
    """``base`` (``deployments/local.yaml``) with the solver scaling to zero within seconds
    when idle."""
    raw = yaml.safe_load(base.read_text())
    for deployment in raw["applications"][0]["deployments"]:
        if deployment["name"] == "solver":
            scale_to_zero_quickly(deployment)
    path = out / "shared.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_all(
    out: Path, quick: bool, only: set[str] | None, config: Path = DEFAULT_CONFIG
) -> dict[str, Any]:
    server = None
    url = data = ""
    if quick:
        port = free_port()
        data_dir = out / "data"
        url = f"http://127.0.0.1:{port}"
        env = {
            "SERVE_APP_DATA_DIR": str(data_dir),
            "SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true",
            "SERVE_APP_API_TOKEN": "",
        }
        print(f"starting the shared server at {url} ...", flush=True)
        server = Server(
            serve_cmd(port, shared_config(out, config)), env, url, out / "shared-server.log"
        )
        print(f"  ready in {server.wait_ready():.1f} s", flush=True)
        data = str(data_dir)
    steps = [(n, a) for n, a in plan(quick, url, data) if only is None or n in only]
    status: dict[str, Any] = {}
    try:
        bar = tqdm(steps, desc="benchmarks", unit="bench", file=sys.stdout)
        for name, args in bar:
            if server is not None and name not in SHARED:
                server.stop()  # the rest start what they measure: nothing else on the CPU
                server = None
                shutil.rmtree(out / "data", ignore_errors=True)
            bar.set_postfix_str(name)
            started = time.monotonic()
            with (out / f"{name}.log").open("w") as log:
                proc = subprocess.run(
                    [sys.executable, "-m", f"benchmarks.{name}", *args, "--out", str(out)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            status[name] = {"returncode": proc.returncode, "seconds": time.monotonic() - started}
            if proc.returncode != 0:
                tqdm.write(f"{name} failed (exit {proc.returncode}); see {out / (name + '.log')}")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(out / "data", ignore_errors=True)
    return status


def load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_points(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every LoadResult-shaped dict anywhere in a report."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if {"target", "concurrency", "requests_per_s", "p50_ms"} <= node.keys():
                found.append(node)
            else:
                for value in node.values():
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary(out: Path, status: dict[str, Any], quick: bool) -> str:
    parts = [f"# Benchmark summary ({'quick' if quick else 'full'} run, {out.name})", ""]
    rows = [
        [
            name,
            "ok" if s["returncode"] == 0 else f"failed ({s['returncode']})",
            f"{s['seconds']:.0f}",
        ]
        for name, s in status.items()
    ]
    parts += [markdown_table(["benchmark", "result", "seconds"], rows), ""]
    for name in ("embeddings", "ocr"):
        points = load_points(load(out, name))
        if points:
            parts += [f"## {name}", ""]
            table = [LoadResult(**p).row() for p in points]
            parts += [markdown_table(HEADER, table), ""]
    for name in ("receipts", "wake"):
        table = out / f"{name}.md"
        if table.is_file():
            parts += [f"## {name}", "", table.read_text().strip(), ""]
    for name in ("search", "plans", "cold_start"):
        report = load(out, name)
        if report is not None:
            parts += [f"## {name}", "", "```json", json.dumps(report, indent=1)[:4000], "```", ""]
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text


def plots(out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []
    points = [
        {**p, "model": name} for name in ("embeddings", "ocr") for p in load_points(load(out, name))
    ]
    if points:
        models = sorted({p["model"] for p in points})
        fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), squeeze=False)
        for ax, model in zip(axes[0], models, strict=True):
            series: dict[str, list[tuple[int, float]]] = {}
            for p in points:
                if p["model"] == model:
                    key = f"{p['target']} {p.get('scenario', '')}".strip()
                    series.setdefault(key, []).append((p["concurrency"], p["requests_per_s"]))
            for key, xy in sorted(series.items()):
                xy.sort()
                ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=key)
            ax.set(title=f"{model}: throughput", xlabel="concurrency", ylabel="requests/s")
            ax.set_xscale("log", base=2)
            ax.legend(fontsize=7)
        made.append(save(fig, out / "throughput.png"))

        fig, ax = plt.subplots(figsize=(8, 4))
        best: dict[str, dict[str, Any]] = {}
        for p in points:
            key = f"{p['model']}: {p['target']} {p.get('scenario', '')}".strip()
            if key not in best or p["concurrency"] > best[key]["concurrency"]:
                best[key] = p
        for key, p in sorted(best.items()):
            ax.plot(
                [p["p50_ms"], p["p95_ms"], p["p99_ms"]], [0.5, 0.95, 0.99], marker="o", label=key
            )
        ax.set(title="latency distribution at the highest load (from p50/p95/p99)",
               xlabel="latency (ms)", ylabel="fraction of requests")  # fmt: skip
        ax.set_xscale("log")
        ax.legend(fontsize=6)
        made.append(save(fig, out / "latency.png"))

        batched = [p for p in points if p.get("mean_batch_size")]
        if batched:
            fig, ax = plt.subplots(figsize=(8, 4))
            labels = [f"{p['model']} {p['target']} c{p['concurrency']}" for p in batched]
            ax.bar(range(len(batched)), [p["mean_batch_size"] for p in batched])
            ax.set_xticks(range(len(batched)), labels, rotation=70, fontsize=6)
            ax.set(title="mean batch size the server formed", ylabel="jobs per batch")
            made.append(save(fig, out / "batches.png"))

    cold = load(out, "cold_start")
    if cold and cold.get("models"):
        fig, ax = plt.subplots(figsize=(8, 1 + len(cold["models"])))
        for row, (_model, r) in enumerate(sorted(cold["models"].items())):
            ax.barh(
                row, r["cold_start_s"], color="tab:orange", label="cold start" if row == 0 else ""
            )
            ax.barh(row, r["warm_request_s"], left=r["cold_start_s"], color="tab:blue",
                    label="request" if row == 0 else "")  # fmt: skip
        ax.set_yticks(range(len(cold["models"])), sorted(cold["models"]))
        title = "first request from zero replicas"
        if "ready_s" in cold:
            title += f" (ready after start: {cold['ready_s']:.1f} s)"
        ax.set(title=title, xlabel="seconds")
        ax.legend()
        made.append(save(fig, out / "cold_start.png"))
    return made


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs (under 5 minutes)")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="base config of the quick run's shared server (deployments/gpu.yaml on a GPU)",
    )
    parser.add_argument("--report-only", action="store_true", help="summary and plots of --out")
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "benchmarks" / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.report_only:
        status = {n: {"returncode": 0, "seconds": 0.0} for n, _ in plan(args.quick)}
    else:
        only = set(args.only.split(",")) if args.only else None
        status = run_all(out, args.quick, only, args.config)
    print(summary(out, status, args.quick).split("\n## ")[0])
    for path in plots(out):
        print(f"plot: {path}")
    print(f"results in {out} ({time.monotonic() - started:.0f} s)")
    if any(s["returncode"] != 0 for s in status.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
