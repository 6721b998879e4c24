"""Starting, joining and stopping the Ray node that ``serve-app run`` serves from."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serve_app.net import free_port, join_host_port, split_host_port
from serve_app.settings import Settings, secret_value

SERVE_NAMESPACE = "serve"


# every node's `ray start` port flags and settings: fixed on Fly (fly.toml), so nodes connect
NODE_PORTS = {
    "--node-manager-port": "ray_node_manager_port",
    "--object-manager-port": "ray_object_manager_port",
    "--runtime-env-agent-port": "ray_runtime_env_agent_port",
    "--dashboard-agent-grpc-port": "ray_dashboard_agent_grpc_port",
    "--dashboard-agent-listen-port": "ray_dashboard_agent_listen_port",
    "--metrics-export-port": "ray_metrics_export_port",
    "--min-worker-port": "ray_min_worker_port",
    "--max-worker-port": "ray_max_worker_port",
}


def node_port_args(settings: Settings | None) -> list[str]:
    """The settings' ports as `ray start` flags (0: Ray picks); none without settings."""
    if settings is None:
        return []
    ports = {flag: getattr(settings, name) for flag, name in NODE_PORTS.items()}
    return [f"{flag}={port}" for flag, port in ports.items() if port]


def _ray_start_command() -> list[str]:
    return [str(Path(sys.executable).with_name("ray")), "start", "--disable-usage-stats"]


_SESSION_KILLER = """
import contextlib, os, sys, psutil
sid, grace = int(sys.argv[1]), float(sys.argv[2])
def members():
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if proc.pid != os.getpid() and os.getsid(proc.pid) == sid:
                found.append(proc)
    return found
procs = members()
for proc in procs:
    with contextlib.suppress(psutil.Error):
        proc.terminate()
_, alive = psutil.wait_procs(procs, timeout=grace)
for proc in alive + members():
    with contextlib.suppress(psutil.Error):
        proc.kill()
"""


def kill_session(sid: int, timeout_s: float = 2.0) -> None:
    """SIGTERM every process of the session ``sid`` (a Ray node), then SIGKILL what is left
    after ``timeout_s``. The session, not the process group: Ray gives each worker a group of
    its own. The grace is short: Ray's daemons do not exit on SIGTERM while the others live.
    A detached process kills: Ray ends its drivers (maybe this one) when the raylet dies."""
    subprocess.Popen(
        [sys.executable, "-c", _SESSION_KILLER, str(sid), str(timeout_s)],
        start_new_session=True,
    ).wait(timeout_s + 20)


def forget_cluster_address(gcs_port: int) -> None:
    """Remove Ray's record of the current cluster (``ray_current_cluster``) when it names the
    GCS at ``gcs_port``, as ``ray stop`` does: left behind, it sends Ray's tools started later
    to a dead head, where they hang. Matched by port: Ray records the node's own address even
    for a head on loopback."""
    from ray._common.utils import get_ray_address_file

    path = Path(get_ray_address_file(None))
    with contextlib.suppress(OSError):  # nothing recorded, or not ours to remove
        if path.read_text().strip().rpartition(":")[2] == str(gcs_port):
            path.unlink()


def use_token_auth(token_file: Path, token: str | None = None) -> None:
    """Ray token auth for this process and the Ray processes it starts. ``token`` (shared by
    all nodes of a cluster) is written to ``token_file``; without it one is made once."""
    if token or not token_file.is_file():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token or secrets.token_hex(32))
        token_file.chmod(0o600)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file.resolve())


# glibc's allocator for every process of the node: memory freed goes back (docs/benchmarks.md)
ALLOCATOR = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}


def tune_allocator() -> None:
    """:data:`ALLOCATOR` for the processes started from here on (an operator's values win)."""
    for name, value in ALLOCATOR.items():
        os.environ.setdefault(name, value)


def use_cluster_token(settings: Settings) -> None:
    """Ray token auth with the cluster's shared token (SERVE_APP_RAY_AUTH_TOKEN), else this
    data directory's own; before Ray is imported (it reads the auth mode once)."""
    use_token_auth(settings.data_dir / "ray_auth_token", secret_value(settings.ray_auth_token))


def node_ip(settings: Settings) -> str:
    """This node's address for other nodes: SERVE_APP_NODE_IP / FLY_PRIVATE_IP (6PN, IPv6),
    else the address Ray itself would pick."""
    if settings.node_ip:
        return settings.node_ip
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


@dataclass
class LocalRayHead:
    """A Ray head node started with ``ray start`` in its own process session (Ctrl-C does not
    reach it, so serve-app drains first). Without ``settings`` (their fixed ports) it is
    private to this machine: free ports, loopback."""

    node_ip: str = "127.0.0.1"
    num_cpus: int | None = None
    settings: Settings | None = None
    pgid: int | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.port = (self.settings.ray_port if self.settings else 0) or free_port()

    def launch(self) -> None:
        """Run ``ray start --head`` in the background (it takes seconds: the caller does
        other work meanwhile, then calls :meth:`wait`)."""
        client_port = self.settings.ray_client_server_port if self.settings else 0
        cmd = [
            *_ray_start_command(),
            "--head",
            f"--port={self.port}",
            f"--node-ip-address={self.node_ip}",
            # not the default 10001, which clashes between heads on one machine (unused: slim_head)
            f"--ray-client-server-port={client_port or free_port()}",
            "--include-dashboard=false",
            *node_port_args(self.settings),
        ]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        self._proc = subprocess.Popen(
            cmd,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**_env(), "RAY_START_HOOK": f"{__name__}.slim_head"},
        )
        self.pgid = self._proc.pid  # the daemons stay in its session after `ray start` exits
        # its output, read as it comes (a full pipe would block it while wait() polls)
        self._output: list[bytes] = []
        self._reader = threading.Thread(
            target=lambda: self._output.append(self._proc.stdout.read()),  # type: ignore[union-attr]
            daemon=True,
            name="ray-start-output",
        )
        self._reader.start()

    def wait(self, timeout_s: float = 120, stop: threading.Event | None = None) -> str | None:
        """Wait for :meth:`launch`'s ``ray start`` to finish; the head's address, or None as
        soon as ``stop`` is set (a signal while Ray starts: the caller stops the head)."""
        assert self._proc is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while self._proc.poll() is None:
            if stop is not None and stop.is_set():
                return None
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self._proc.args, timeout_s)
            time.sleep(0.05)
        self._reader.join(10)
        output = b"".join(self._output)
        if self._proc.returncode != 0:
            self.stop()
            tail = output.decode(errors="replace")[-2000:]
            raise RuntimeError(f"`ray start --head` failed ({self._proc.returncode}):\n{tail}")
        return join_host_port(self.node_ip, self.port)

    def start(self) -> str:
        """Start the head and wait for it; its address."""
        self.launch()
        address = self.wait()
        assert address is not None  # (no stop event)
        return address

    def stop(self) -> None:
        """SIGTERM Ray's daemons and workers, then SIGKILL what is left."""
        if self.pgid is None:
            return
        pgid, self.pgid = self.pgid, None
        kill_session(pgid)
        forget_cluster_address(self.port)


@dataclass
class RayWorker:
    """A Ray worker node joined to a head (``serve-app join``): ``ray start --block`` in its
    own process session, so that stopping it stops the node's daemons with it."""

    head_address: str
    node_ip: str | None = None
    num_cpus: int | None = None
    settings: Settings | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    def command(self) -> list[str]:
        cmd = [*_ray_start_command(), f"--address={self.head_address}", "--block"]
        if self.node_ip:
            cmd.append(f"--node-ip-address={self.node_ip}")
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        return [*cmd, *node_port_args(self.settings)]

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(self.command(), start_new_session=True, env=_env())
        return self.proc

    def stop(self) -> None:
        if self.proc is None:
            return
        kill_session(self.proc.pid)
        self.proc.wait(timeout=30)
        forget_cluster_address(split_host_port(self.head_address)[1])


def _env() -> dict[str, str]:
    # Ray runs workers at nice 15; here they are the service and must not yield to its load
    return {"RAY_worker_niceness": "0", **os.environ}


def slim_head(ray_params: Any, head: bool) -> None:
    """``RAY_START_HOOK`` (called with ``ray start``'s parameters before any process starts):
    a head without the autoscaler monitor, the Ray Client server and the dashboard head, which
    ``ray start`` waits for (about 3 s of its 8) even with ``--include-dashboard=false``.
    Together about 290 MB of RSS. Serve's REST API (``serve deploy`` to a running cluster)
    needs the dashboard. Ray is pinned (2.60.0); tests/e2e/test_cluster.py checks."""
    if not head:
        return
    import ray._private.services as services

    ray_params.no_monitor = True
    ray_params.ray_client_server_port = None
    services.start_api_server = lambda *args, **kwargs: (None, None)
