"""`serve-app run` as an operator runs it: ready line, then SIGTERM drains in-flight work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from serve_app.app import only_models
from serve_app.net import free_port
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir
from tests.conftest import TOKEN

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_run_prints_url_and_drains_on_sigterm(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "SERVE_APP_DATA_DIR": str(tmp_path / "data")}
    # Its own cluster and its own ports: the test session's HAProxy ports and its fallback
    # proxy's (this process has them in its environment) would send some of this server's
    # requests to the session's app (its /health once answered for this one's).
    for name in [n for n in env if n.startswith("RAY_SERVE_") and n.endswith("_PORT")]:
        env.pop(name)
    env.pop("RAY_ADDRESS", None)
    # The default config without OCR: this test is about the CLI, and CI has 2 cores.
    raw = yaml.safe_load((ROOT / "deployments" / "local.yaml").read_text())
    app = raw["applications"][0]
    only_models(app, ["embeddings"])
    config = tmp_path / "embeddings-only.yaml"
    config.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serve_app.cli",
            "run",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready in"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    early: dict[str, object] = {}
    prober = threading.Thread(target=probe_while_starting, args=(url, ready, early), daemon=True)
    prober.start()
    try:
        assert ready.wait(240), "".join(lines[-30:])
        prober.join(60)
        bridged(url, early, "".join(lines), proc.pid)
        ready_line = next(x for x in lines if x.startswith("ready in"))
        assert url in ready_line
        # The embedded PostgreSQL was started, migrated and is the store's database.
        assert any(x.startswith("database ready: embedded PostgreSQL") for x in lines)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()
        assert health["components"]["store"]["status"] == "ready", health
        # On a CPU the embeddings run on ONNX Runtime
        assert health["components"]["embeddings"]["engine"] == "onnxruntime", health

        # A slow request is in flight when SIGTERM arrives; it must still complete.
        result: dict[str, object] = {}

        def slow_request() -> None:
            texts = [f"weekly shopping list entry number {i} " * 40 for i in range(64)]
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/embeddings",
                    json={"input": texts},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=120,
                )
                result["status"] = response.status_code
                result["count"] = len(response.json()["data"])
            except Exception as exc:
                result["error"] = repr(exc)

        client = threading.Thread(target=slow_request)
        client.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # SIGTERM once the request reached the model
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            except httpx.TimeoutException:
                continue
            if 'serve_app_model_inflight{model="embeddings"} 1.0' in metrics:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        client.join(120)
        assert result == {"status": 200, "count": 64}, result
        assert proc.wait(120) == 0
        reader.join(10)
        output = "".join(lines)
        assert "draining" in output
        assert "stopped the embedded PostgreSQL" in output
        assert not EmbeddedPostgres(pgdata_dir(tmp_path / "data")).running()
        # The machine is left as clean as `ray stop` leaves it: Ray's own tools, started next,
        # do not try to join the dead head (they hung on its stale cluster record).
        serve_run_after(config, env)
    finally:
        if proc.poll() is None:
            # SIGTERM first: serve-app then stops the Ray head it started (SIGKILL would orphan it).
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(150)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def probe_while_starting(url: str, ready: threading.Event, early: dict[str, object]) -> None:
    """From the start: embeddings until the first 200, then a document stored and a receipt
    parse sent while the bridge holds the port (serve_app/startup/bridge/)."""

    def post(path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{url}{path}", json=body, headers=AUTH, timeout=120)

    while not ready.is_set():
        try:
            first = post("/v1/embeddings", {"input": "oat milk"})
            if first.status_code == 200:
                early["embeddings"] = first
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        return
    # the bridge serves the store too, once the embedded PostgreSQL answers (503 until then)
    document = {"namespace": "bridge-test", "documents": [{"id": "1", "text": "oat milk"}]}
    while not ready.is_set():
        stored = post("/v1/documents", document)
        if stored.status_code == 200:
            early["documents"] = stored
            break
        time.sleep(0.2)
    # held by the bridge until Serve answers, then answered by Serve
    early["held"] = post("/v1/receipts/parse", {"lines": ["MILK 1.99", "TOTAL 1.99"]})


def bridged(url: str, early: dict[str, object], output: str, pid: int) -> None:
    """What the bridge did while Serve started, and that Serve has the port now."""
    first = early.get("embeddings")
    assert isinstance(first, httpx.Response), f"no embeddings answer before ready: {early}"
    assert first.headers.get("x-served-by") == "bridge", dict(first.headers)
    stored = early.get("documents")
    assert isinstance(stored, httpx.Response), f"no document stored by the bridge: {early}"
    assert stored.headers.get("x-served-by") == "bridge" and stored.json() == {"upserted": 1}
    held = early["held"]
    assert isinstance(held, httpx.Response)
    assert held.status_code == 200 and "x-served-by" not in held.headers, held.text
    assert held.json()["receipt"]["total"] == 1.99
    assert "bridge: handed over" in output
    # Serve answers now, with the same model, and finds what the bridge stored
    now = httpx.post(f"{url}/v1/embeddings", json={"input": "oat milk"}, headers=AUTH, timeout=60)
    assert now.status_code == 200 and "x-served-by" not in now.headers
    a = first.json()["data"][0]["embedding"]
    b = now.json()["data"][0]["embedding"]
    assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.9999
    query = {"namespace": "bridge-test", "query": "oat milk", "k": 1}
    found = httpx.post(f"{url}/v1/search", json=query, headers=AUTH, timeout=60).json()
    assert [r["id"] for r in found["results"]] == ["1"], found
    # and the bridge's process is gone, with the memory of its model
    children = psutil.Process(pid).children(recursive=True)
    assert not [c for c in children if "serve_app.startup.bridge" in " ".join(c.cmdline())]


def serve_run_after(config: Path, env: dict[str, str]) -> None:
    """`serve run` on the same config (the README offers it) serves once `serve-app run` has
    stopped: it starts a Ray instance of its own instead of waiting for the dead one."""
    port = free_port()
    raw = yaml.safe_load(config.read_text())
    raw.setdefault("http_options", {})["port"] = port
    config.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in env.items() if not k.startswith("RAY_SERVE_")}
    env["RAY_SERVE_ENABLE_HA_PROXY"] = "0"  # Ray's own default proxy, as a plain `serve run`
    serve = str(Path(sys.executable).with_name("serve"))
    proc = subprocess.Popen(
        [serve, "run", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/embeddings",
                    json={"input": "oat milk"},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=10,
                )
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert answer is not None and answer.status_code == 200, (
            f"`serve run` did not serve after `serve-app run` stopped: {answer}"
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # serve run shuts down the Ray it started
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
