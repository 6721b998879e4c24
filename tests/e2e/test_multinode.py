"""Two Ray nodes on one machine, as two Fly machines would be: `serve-app run --head` and
`serve-app join` (the real commands, in their own processes, over IPv6 when this machine has a
non-loopback IPv6 address, as Fly's 6PN does). Replicas land on the worker, requests succeed,
and losing the worker (SIGKILL, as a machine dying) keeps the app serving."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from serve_app.app import only_models
from serve_app.net import free_port, join_host_port
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "multinode-token-0123456789"


def private_ip() -> str:
    """A global (non-loopback, non-link-local) IPv6 address of this machine, like Fly's
    FLY_PRIVATE_IP; 127.0.0.1 where there is none."""
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET6:
                ip = addr.address.split("%")[0]
                if ip != "::1" and not ip.startswith("fe80"):
                    return ip
    return "127.0.0.1"


def multinode_config(path: Path) -> Path:
    """deployments/fly.yaml with embeddings only, two replicas (at most one per node) and
    small CPU shares for this 2-core machine."""
    raw = yaml.safe_load((ROOT / "deployments" / "fly.yaml").read_text())
    app = only_models(raw["applications"][0], ["embeddings"])
    app["args"]["store"] = False  # no database in this test
    for deployment in app["deployments"]:
        deployment["ray_actor_options"]["num_cpus"] = 0.1
        if deployment["name"] == "embeddings":
            assert deployment["max_replicas_per_node"] == 1
            deployment.pop("autoscaling_config")
            deployment["num_replicas"] = 2
            deployment["user_config"]["threads"] = 1
    path.write_text(yaml.safe_dump(raw))
    return path


def node_env(data_dir: Path, ip: str, worker_ports: tuple[int, int]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # this session's own Ray cluster and HAProxy ports are not for these nodes
        if not k.startswith(("RAY_", "SERVE_APP_"))
    }
    env.update(
        SERVE_APP_API_TOKEN=TOKEN,
        SERVE_APP_DATA_DIR=str(data_dir),
        SERVE_APP_NODE_IP=ip,
        SERVE_APP_RAY_AUTH_TOKEN="shared-cluster-secret-0123456789",  # a Fly secret
        SERVE_APP_RAY_NUM_CPUS="1",
        SERVE_APP_RAY_MIN_WORKER_PORT=str(worker_ports[0]),
        SERVE_APP_RAY_MAX_WORKER_PORT=str(worker_ports[1]),
        RAY_SERVE_LOG_TO_STDERR="0",
    )
    # Two nodes on one machine: let Ray choose the other ports (fixed on Fly).
    for name in (
        "RAY_CLIENT_SERVER_PORT",
        "RAY_NODE_MANAGER_PORT",
        "RAY_OBJECT_MANAGER_PORT",
        "RAY_RUNTIME_ENV_AGENT_PORT",
        "RAY_DASHBOARD_AGENT_GRPC_PORT",
        "RAY_DASHBOARD_AGENT_LISTEN_PORT",
        "RAY_METRICS_EXPORT_PORT",
    ):
        env[f"SERVE_APP_{name}"] = "0"
    return env


def serve_app(*args: str) -> list[str]:
    return [sys.executable, "-m", "serve_app.cli", *args]


def kill_tree(proc: subprocess.Popen, sig: int) -> None:
    try:
        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)


def status(env: dict[str, str], address: str) -> str:
    out = subprocess.run(
        serve_app("status"),
        env={**env, "RAY_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def embeddings_nodes(text: str) -> int:
    """How many distinct nodes `serve-app status` shows running embeddings replicas on."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("embeddings") and i + 1 < len(lines):
            following = lines[i + 1].strip()
            if following.startswith("on nodes:"):
                return len(following.removeprefix("on nodes:").split(","))
    return 0


def embed(client: httpx.Client, url: str, text: str) -> int:
    try:
        response = client.post(
            f"{url}/v1/embeddings",
            json={"input": text},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
    except httpx.HTTPError:
        return 0
    if response.status_code == 200:
        assert len(response.json()["data"][0]["embedding"]) == 384
    return response.status_code


def test_worker_node_serves_replicas_and_its_loss_keeps_the_app_serving(tmp_path):
    ip = private_ip()
    config = multinode_config(tmp_path / "multinode.yaml")
    port, gcs_port = free_port(), free_port()
    head_env = node_env(tmp_path / "head", ip, (21000, 21099))
    head_env["SERVE_APP_RAY_PORT"] = str(gcs_port)
    worker_env = node_env(tmp_path / "worker", ip, (21100, 21199))
    address = join_host_port(ip, gcs_port)
    head_log = (tmp_path / "head.log").open("w")
    head = subprocess.Popen(
        serve_app("run", "--head", "--config", str(config), "--host", "::", "--port", str(port)),
        env=head_env,
        stdout=head_log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    worker = None
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            try:
                response = httpx.get(f"{url}/health", timeout=5)
                body = response.json()  # before the app deploys, Serve answers in plain text
            except (httpx.HTTPError, ValueError):
                return False
            # this head's own app (embeddings only), not another server on the machine, and
            # Serve's answer: the bridge (serve_app/startup/bridge/) answers /health while
            # Serve starts
            components = set(body.get("components", {}))
            serve = "x-served-by" not in response.headers
            return response.status_code == 200 and components == {"embeddings"} and serve

        wait_for(ready, 300, "the head to serve")
        log = (tmp_path / "head.log").read_text()
        assert f"serve-app join {address}" in log  # it tells operators how to add nodes
        assert embeddings_nodes(status(head_env, address)) == 1  # the 2nd replica is pending

        worker_log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen(
            serve_app("join", address),
            env=worker_env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        text = wait_for(
            lambda: (s := status(head_env, address)) and embeddings_nodes(s) == 2 and s,
            300,
            "an embeddings replica on the worker",
        )
        assert "Ray nodes: 2 alive" in text
        # The head listens on "::": IPv4 (Fly's proxy) and IPv6 (6PN) both reach it.
        client = httpx.Client()
        assert embed(client, url, "oat milk") == 200
        if ":" in ip:
            assert embed(client, f"http://{join_host_port(ip, port)}", "oat milk") == 200
        # Both replicas answer: the worker's replica serves requests too.
        codes = [embed(client, url, f"item {i}") for i in range(20)]
        assert codes == [200] * 20

        kill_tree(worker, signal.SIGKILL)  # the worker machine dies
        worker.wait(timeout=30)
        lost_at = time.monotonic()
        results = []
        while time.monotonic() - lost_at < 20:
            results.append(embed(client, url, f"after loss {len(results)}"))
        failed = sum(code != 200 for code in results)
        print(f"\nafter losing the worker: {len(results)} requests, {failed} failed")
        # Requests to the dead replica are retried on the live one (DeploymentClient); at most
        # one clean 503 per in-flight request while Serve notices, and none afterwards.
        assert failed <= 2, results
        assert results[-5:] == [200] * 5
        assert ready()
        text = status(head_env, address)
        assert "Ray nodes: 1 alive" in text
        assert embeddings_nodes(text) == 1
    finally:
        if worker is not None and worker.poll() is None:
            kill_tree(worker, signal.SIGKILL)
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=120)
        except subprocess.TimeoutExpired:
            kill_tree(head, signal.SIGKILL)
    assert head.returncode == 0, (tmp_path / "head.log").read_text()[-3000:]
    assert "stopped" in (tmp_path / "head.log").read_text()
