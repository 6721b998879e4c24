"""Server processes for the benchmarks: ``serve-app run`` or a baseline as a subprocess of its
own (``Server``), or a server someone else started (``Attached``), waited for on /health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from serve_app.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_healthy(
    url: str,
    timeout_s: float,
    failed: Callable[[], str | None] = lambda: None,
    hint: str = "",
) -> None:
    """Poll ``url``/health every 0.25 s until Serve answers it 200 (not the bridge that holds
    the port while Serve starts, serve_app/startup/bridge/: a benchmark measures Serve);
    ``failed()`` returning a reason (the server process exited) stops the wait at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reason = failed()
        if reason:
            raise RuntimeError(reason)
        try:
            health = httpx.get(f"{url}/health", timeout=5)
            if health.status_code == 200 and "x-served-by" not in health.headers:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready in {timeout_s} s{hint}")


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``cmd`` from the repository root with ``env`` added, in a session of its own (a signal
    to its group reaches everything it starts), its output in ``log``."""
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Server:
    """A server subprocess with its own process group, stopped with SIGTERM."""

    def __init__(self, cmd: list[str], env: dict[str, str], url: str, log: Path):
        self.url = url
        self.log = log
        self.started = time.monotonic()
        self.proc = spawn(cmd, env, log)

    def wait_ready(self, timeout_s: float = 300) -> float:
        """Seconds from start to a healthy /health."""

        def exited() -> str | None:
            return f"server exited; see {self.log}" if self.proc.poll() is not None else None

        wait_healthy(self.url, timeout_s, exited, f"; see {self.log}")
        return time.monotonic() - self.started

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Attached:
    """A server started by someone else (``--url``, the suite's shared server): waited for,
    measured, never stopped."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def wait_ready(self, timeout_s: float = 300) -> float:
        wait_healthy(self.url, timeout_s)
        return 0.0

    def stop(self) -> None:
        pass


def this_server(
    attach: str | None, config: Path, env: dict[str, str], log: Path
) -> Server | Attached:
    """The server to measure: the running one at ``attach``, or ``serve-app run --config
    config`` started on a free port."""
    if attach:
        return Attached(attach)
    port = free_port()
    return Server(serve_cmd(port, config), env, f"http://127.0.0.1:{port}", log)


def serve_cmd(port: int, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "serve_app.cli",
        "run",
        "--config",
        str(config),
        "--port",
        str(port),
    ]
