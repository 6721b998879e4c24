"""`make image-test`: the CPU image, run as a container, behaves as Fly will run it.

1. As fly.toml runs it (its command and environment, ``--memory 2g`` without swap, a token,
   host network): ``/health`` 200 from the bridge (serve_app/startup/bridge/), then from Serve with
   every model warm; an embeddings request answers 200, one without the token 401; the server
   runs as a non-root user. Then Fly's heaviest moment: three phone-size receipts (3024x4032
   JPEG) at once, a plan, embeddings and a search, all together: every answer 200, nothing
   killed by the kernel; the container's peak memory, every process's PSS, and that no
   process maps libtorch, printed.
2. ``podman stop`` (SIGTERM) ends it cleanly (exit status 0) within fly.toml's kill_timeout.
3. Started again with ``--network none`` and the image's own command (``deployments/fly.yaml``,
   which asks for more cores than this machine has), it reaches ``/health`` 200 too, probed from
   inside (``podman exec``): nothing is downloaded at run time, and the CPU shares are fitted to
   the cores there are, saying so.
4. Stopped while the bridge still holds the port, it answered embeddings from the bridge and
   exits 0 within kill_timeout.
Prints each step with its time and the image's size; exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks' receipt and plan generators
TOKEN = "image-test-token-0123456789"
PROBE = """
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://127.0.0.1:%s/health", timeout=5) as r:
        print(r.status, r.headers.get("x-served-by", "serve"), r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("x-served-by", "serve"), e.read().decode())
except OSError as e:
    print(0, "-", json.dumps({"error": str(e)}))
"""


class CheckFailed(Exception):
    pass


def podman(*args: str, check: bool = True, timeout: float = 300) -> str:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "image" / "containers.conf")}
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and done.returncode != 0:
        raise CheckFailed(f"podman {' '.join(args[:3])} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def step(message: str, started: float) -> None:
    print(f"  [{time.monotonic() - started:6.1f} s] {message}", flush=True)


FLY = tomllib.loads((ROOT / "fly" / "fly.toml").read_text())


def kill_timeout_s() -> float:
    return float(str(FLY["kill_timeout"]).rstrip("s"))


def phone_receipt(seed: int) -> bytes:
    """A receipt photographed by a phone: a 3024x4032 JPEG (12 megapixels), the printed
    receipt filling most of it on a darker table."""
    from PIL import Image

    from benchmarks.data.receipt_data import generate, render

    page = render(generate(seed)).convert("RGB")
    scale = 3400 / page.height
    page = page.resize((int(page.width * scale), 3400), Image.Resampling.BICUBIC)
    photo = Image.new("RGB", (3024, 4032), (92, 84, 76))
    photo.paste(page, ((3024 - page.width) // 2, 300))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


INSIDE = """
import glob, json
pss, torch = 0, []
for rollup in glob.glob("/proc/[0-9]*/smaps_rollup"):
    try:
        fields = dict(l.split(":", 1) for l in open(rollup).read().splitlines()[1:])
        pss += int(fields["Pss"].split()[0])
        if "libtorch" in open(rollup.replace("smaps_rollup", "maps")).read():
            torch.append(rollup.split("/")[2])
    except (OSError, KeyError, ValueError):
        pass
print(json.dumps({"pss_mb": round(pss / 1024), "libtorch_pids": torch}))
"""


def memory_inside(name: str) -> dict:
    """Every process's PSS, summed, and the processes that map libtorch, read inside."""
    return json.loads(podman("exec", name, "/opt/venv/bin/python", "-c", INSIDE))


def fly_load(url: str) -> dict:
    """Three phone-size receipts at once, a plan, embeddings and a search (after an upsert),
    all sent together; every answer must be 200."""
    import httpx

    from benchmarks.data.plan_data import week_request

    headers = {"Authorization": f"Bearer {TOKEN}"}
    photos = [phone_receipt(seed) for seed in (1, 2, 3)]
    namespace = f"image-test-{int(time.time())}"
    upsert = httpx.post(
        f"{url}/v1/documents",
        json={"namespace": namespace, "documents": [{"id": "1", "text": "oat milk 1 l"}]},
        headers=headers,
        timeout=120,
    )
    if upsert.status_code != 200:
        raise CheckFailed(f"documents: {upsert.status_code} {upsert.text[:300]}")
    jpeg = {**headers, "Content-Type": "image/jpeg"}
    calls = [("ocr", "/v1/ocr", {"content": photo, "headers": jpeg}) for photo in photos] + [
        ("plan", "/v1/plans", {"json": week_request(20, seed=1, days=3, timeout_ms=5000)}),
        ("embeddings", "/v1/embeddings", {"json": {"input": ["oat milk", "rye bread"]}}),
        ("search", "/v1/search", {"json": {"namespace": namespace, "query": "plant milk"}}),
    ]

    def send(call: tuple) -> tuple[str, int, float, str]:
        what, path, kwargs = call
        kwargs = {"headers": headers, **kwargs}
        began = time.monotonic()
        try:
            r = httpx.post(f"{url}{path}", timeout=300, **kwargs)
            return what, r.status_code, time.monotonic() - began, r.text[:200]
        except httpx.HTTPError as exc:  # a dropped connection: the kernel killed something
            return what, 0, time.monotonic() - began, repr(exc)

    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(send, calls))
    bad = [a for a in answers if a[1] != 200]
    if bad:
        raise CheckFailed(f"under Fly's load: {bad}")
    return {what: round(seconds, 1) for what, _, seconds, _ in answers[-3:]} | {
        "receipts_s": [round(a[2], 1) for a in answers[:3]],
        "receipt_bytes": [len(p) for p in photos],
    }


def health_inside(name: str, port: int) -> tuple[int, str, dict]:
    """/health as seen from inside the container (works with --network none): status, who
    answered ("bridge" while Serve starts, serve_app/startup/bridge/, else "serve"), body."""
    out = podman("exec", name, "/opt/venv/bin/python", "-c", PROBE % port, check=False)
    status, _, rest = out.partition(" ")
    by, _, body = rest.partition(" ")
    try:
        return int(status), by, json.loads(body or "{}")
    except ValueError:
        return 0, "-", {"error": out[-300:]}


def wait_healthy(
    name: str, port: int, timeout_s: float, started: float, by: str | None = "serve"
) -> dict:
    """Poll until /health is 200 from ``by`` (None: from either); its body."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        state = podman("inspect", name, "--format", "{{.State.Status}}", check=False)
        if state not in ("running", "created", "configured", ""):
            logs = podman("logs", "--tail", "40", name, check=False)
            raise CheckFailed(f"container {name} is {state} before it was ready:\n{logs}")
        status, answered_by, body = health_inside(name, port)
        summary = f"{body.get('status') or body.get('error', '')[:80]} ({answered_by})"
        if summary != last:
            step(f"/health {status}: {summary}", started)
            last = summary
        if status == 200 and by in (None, answered_by):
            return body
        time.sleep(1)
    logs = podman("logs", "--tail", "40", name, check=False)
    raise CheckFailed(f"{name}: /health not 200 after {timeout_s:.0f} s:\n{logs}")


def run_container(
    name: str, image: str, port: int, network: str, memory: str, *cmd: str, env: dict | None = None
) -> None:
    podman("rm", "-f", name, check=False)
    settings = {**(env or {}), "SERVE_APP_API_TOKEN": TOKEN, "SERVE_APP_PORT": str(port)}
    podman(
        "run", "-d", "--name", name, "--network", network,
        "--memory", memory, "--memory-swap", memory,  # no swap: as on Fly (it would not suspend)
        *(arg for key, value in settings.items() for arg in ("-e", f"{key}={value}")),
        image, *cmd,
    )  # fmt: skip


def first_start(image: str, memory: str, ready_timeout_s: float) -> dict:
    """fly.toml's command and environment (the port moved to a free one: host network)."""
    from benchmarks.wake import container_memory

    name, port = "gpai-image-test", free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    command = FLY["processes"]["app"].split()
    print(f"1. {image}: `{' '.join(command)}` with fly.toml's [env], --memory {memory}", flush=True)
    run_container(name, image, port, "host", memory, *command, env=FLY["env"])
    try:
        wait_healthy(name, port, ready_timeout_s, started, by="bridge")
        health = wait_healthy(name, port, ready_timeout_s, started)
        ready_s = time.monotonic() - started
        warm = {n: c["status"] for n, c in health["components"].items()}
        if set(warm.values()) != {"ready"}:
            raise CheckFailed(f"every model warm, as fly.yaml asks: {warm}")
        step(f"ready: {health['status']}, every component ready: {sorted(warm)}", started)
        embed = subprocess.run(
            ["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", f"{url}/v1/embeddings",
             "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
             "-d", '{"input": ["oat milk"]}'],
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
        body, _, code = embed.rpartition("\n")
        vector = json.loads(body)["data"][0]["embedding"] if code == "200" else []
        if code != "200" or len(vector) != 384:
            raise CheckFailed(f"embeddings: {code} {body[:300]}")
        step("POST /v1/embeddings with the token: 200, 384 dimensions", started)
        denied = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/v1/embeddings",
             "-H", "Content-Type: application/json", "-d", '{"input": "oat milk"}'],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        # from the host's loopback without a token: 401 (a token is configured)
        if denied != "401":
            raise CheckFailed(f"without the token: {denied}, expected 401")
        step("POST /v1/embeddings without the token: 401", started)
        users = podman("top", name, "user", "comm").splitlines()[1:]
        serving = [u.split() for u in users if "serve-app" in u or "ray::" in u]
        if not serving or any(u[0] in ("root", "0") for u in serving):
            raise CheckFailed(f"processes run as root: {users}")
        step(f"runs as {serving[0][0]} ({len(users)} processes, none as root)", started)
        idle = memory_inside(name)
        load = fly_load(url)
        state = podman("inspect", name, "--format", "{{.State.OOMKilled}} {{.State.Status}}")
        if state != "false running":
            raise CheckFailed(f"after the load the container is: {state}")
        after = memory_inside(name)
        cgroup = container_memory(name)
        if after["libtorch_pids"] or idle["libtorch_pids"]:
            raise CheckFailed(f"processes that map libtorch: {after['libtorch_pids']}")
        step(
            f"3 phone receipts at once ({', '.join(map(str, load['receipts_s']))} s), a plan "
            f"({load['plan']} s), embeddings, a search: all 200, not OOM-killed; memory peak "
            f"{cgroup.get('peak_mb', 0):.0f} MB of {memory}, every process's PSS {after['pss_mb']} "
            f"MB (idle {idle['pss_mb']} MB); no process maps libtorch",
            started,
        )
        limit = kill_timeout_s()
        stop_started = time.monotonic()
        podman("stop", "-t", str(int(limit)), name, timeout=limit + 60)
        stop_s = time.monotonic() - stop_started
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}")
        if code != "0":
            logs = podman("logs", "--tail", "30", name, check=False)
            raise CheckFailed(f"exit status {code} after podman stop:\n{logs}")
        if stop_s > limit:
            raise CheckFailed(f"stopping took {stop_s:.1f} s, over kill_timeout {limit:.0f} s")
        step(f"2. podman stop: exit 0 in {stop_s:.1f} s (kill_timeout {limit:.0f} s)", started)
        return {
            "ready_s": round(ready_s, 1),
            "stop_s": round(stop_s, 1),
            "peak_mb": round(cgroup.get("peak_mb", 0)),
            "pss_mb": after["pss_mb"],
            "idle_pss_mb": idle["pss_mb"],
            "load": load,
        }
    finally:
        podman("rm", "-f", name, check=False)


def offline_fly_start(image: str, memory: str, ready_timeout_s: float) -> dict:
    name, port = "gpai-image-test-offline", 8000
    started = time.monotonic()
    print(f"3. {image}: the image's own command (fly.yaml), --network none", flush=True)
    run_container(name, image, port, "none", memory)
    try:
        wait_healthy(name, port, ready_timeout_s, started, by=None)
        bridge_s = time.monotonic() - started
        health = wait_healthy(name, port, ready_timeout_s, started)
        ready_s = time.monotonic() - started
        logs = podman("logs", name, check=False)
        fitted = [line for line in logs.splitlines() if "CPU" in line and "fit" in line]
        if not fitted and (os.cpu_count() or 1) < 4:
            raise CheckFailed(f"no message about fitting fly.yaml's CPUs:\n{logs[-1500:]}")
        for line in fitted:
            step(line.strip(), started)
        step(f"ready offline: {health['status']} in {ready_s:.1f} s", started)
        return {"ready_s": round(ready_s, 1), "first_200_s": round(bridge_s, 1),
                "status": health["status"]}  # fmt: skip
    finally:
        podman("stop", "-t", "30", name, check=False, timeout=120)
        podman("rm", "-f", name, check=False)


def stop_while_starting(image: str, memory: str, ready_timeout_s: float) -> dict:
    """SIGTERM while the bridge still holds the port (Fly stops a machine whenever it
    likes): the embeddings answer came from the bridge, and the stop is clean and quick."""
    name, port = "gpai-image-test-early-stop", free_port()
    started = time.monotonic()
    print(f"4. {image}: podman stop while Serve starts", flush=True)
    run_container(name, image, port, "host", memory)
    try:
        wait_healthy(name, port, ready_timeout_s, started, by="bridge")
        embed = subprocess.run(
            ["curl", "-s", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{port}/v1/embeddings",
             "-H", f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
             "-d", '{"input": ["oat milk"]}'],
            capture_output=True, text=True, timeout=120,
        ).stdout.lower()  # fmt: skip
        if " 200" not in embed.splitlines()[0] or "x-served-by: bridge" not in embed:
            raise CheckFailed(f"embeddings from the bridge: {embed[:300]}")
        step("POST /v1/embeddings: 200 from the bridge", started)
        limit = kill_timeout_s()
        stop_started = time.monotonic()
        podman("stop", "-t", str(int(limit)), name, timeout=limit + 60)
        stop_s = time.monotonic() - stop_started
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}")
        logs = podman("logs", name, check=False)
        if code != "0" or "stopping while starting" not in logs:
            raise CheckFailed(
                f"exit status {code} after podman stop while starting:\n{logs[-3000:]}"
            )
        step(f"podman stop while starting: exit 0 in {stop_s:.1f} s", started)
        return {"stop_s": round(stop_s, 1)}
    finally:
        podman("rm", "-f", name, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default="grocery-planner-ai:cpu")
    parser.add_argument("--memory", default="2g", help="fly.toml's machine memory")
    parser.add_argument("--ready-timeout", type=float, default=600)
    args = parser.parse_args()
    exists = subprocess.run(
        ["podman", "image", "exists", args.image],
        env={**os.environ, "CONTAINERS_CONF": str(ROOT / "image" / "containers.conf")},
    )
    if exists.returncode != 0:
        print(f"image-test: no image {args.image}; `make image` builds it", file=sys.stderr)
        return 2
    size_mb = int(podman("image", "inspect", args.image, "--format", "{{.Size}}")) // 1_000_000
    print(f"image {args.image}: {size_mb} MB", flush=True)
    try:
        first = first_start(args.image, args.memory, args.ready_timeout)
        offline = offline_fly_start(args.image, args.memory, args.ready_timeout)
        early = stop_while_starting(args.image, args.memory, args.ready_timeout)
    except CheckFailed as exc:
        print(f"image-test FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"image-test passed: {size_mb} MB; as fly.toml runs it in {args.memory}: ready in "
        f"{first['ready_s']} s, under three receipts, a plan, embeddings and a search all 200 "
        f"with a peak of {first['peak_mb']} MB and {first['pss_mb']} MB PSS, stopped in "
        f"{first['stop_s']} s; offline /health 200 from the bridge in {offline['first_200_s']} "
        f"s, from Serve in {offline['ready_s']} s ({offline['status']}); stopped while "
        f"starting in {early['stop_s']} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
