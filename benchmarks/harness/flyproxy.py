"""A STAND-IN for Fly's proxy with autostop/autostart, in front of one podman container: for
the wake benchmark only, not Fly.

What it copies from Fly (fly.toml's ``auto_stop_machines`` and ``auto_start_machines``): after
``idle_s`` without requests it stops the machine (``podman stop``, SIGTERM, like
``auto_stop_machines = "stop"``) or suspends it (``podman pause``, the processes frozen in
memory, like ``"suspend"``, which Fly does with a memory snapshot instead); the next request
starts (``podman start``) or resumes (``podman unpause``) it and is held, not refused, until the
machine passes its service check (fly.toml's ``[[http_service.checks]]``: ``GET /health``
2xx; Fly's proxy does not route to a machine whose service check fails), then forwarded, and
the answer passed on as it is. The check is polled every ``check_every_s`` (0.25 s) after a
wake; Fly runs it at the check's ``interval``, so on Fly a cold start can wait up to one
interval more. What it does not copy: regions, load balancing between machines, concurrency
limits, TLS, Fly's own retry timings.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def podman(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "image" / "containers.conf")}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@dataclass
class Wake:
    """One wake: when the request that woke the machine arrived, and when it was answered."""

    mode: str
    started_s: float  # machine start (or resume) command, from the request's arrival
    answered_s: float  # the request's answer, from its arrival
    status: int


@dataclass
class FlyProxyStandIn:
    container: str
    upstream: str  # http://127.0.0.1:PORT of the container's server
    idle_s: float = 10.0
    mode: str = "stop"  # or "suspend"
    hold_s: float = 300.0  # how long a request is held while the machine starts
    check_path: str = "/health"  # fly.toml's service check
    check_every_s: float = 0.25
    state: str = "started"
    wakes: list[Wake] = field(default_factory=list)
    last_request: float = field(default_factory=time.monotonic)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _inflight: int = 0

    async def _idle_watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            idle = time.monotonic() - self.last_request
            if self.state == "started" and not self._inflight and idle >= self.idle_s:
                async with self._lock:
                    if self._inflight or time.monotonic() - self.last_request < self.idle_s:
                        continue
                    command = ("pause",) if self.mode == "suspend" else ("stop", "-t", "120")
                    await asyncio.to_thread(podman, *command, self.container)
                    self.state = "suspended" if self.mode == "suspend" else "stopped"

    async def _wake(self) -> float | None:
        """Start or resume the machine if it is not started; seconds it took, or None."""
        async with self._lock:
            if self.state == "started":
                return None
            began = time.monotonic()
            command = "unpause" if self.state == "suspended" else "start"
            done = await asyncio.to_thread(podman, command, self.container)
            if done.returncode != 0:
                raise RuntimeError(f"podman {command} failed: {done.stderr.strip()}")
            await self._until_healthy(began + self.hold_s)
            self.state = "started"
            return time.monotonic() - began

    async def _until_healthy(self, deadline: float) -> None:
        """Until the machine passes its service check (connection errors while it boots)."""
        while time.monotonic() < deadline:
            try:
                async with self.session.get(f"{self.upstream}{self.check_path}") as check:
                    if 200 <= check.status < 300:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(self.check_every_s)
        raise RuntimeError(f"the machine did not pass {self.check_path} in time")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        self.last_request = arrived
        self._inflight += 1
        try:
            woke = await self._wake()
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
            deadline = arrived + self.hold_s
            while True:
                try:
                    async with self.session.request(
                        request.method,
                        f"{self.upstream}{request.rel_url}",
                        data=body,
                        headers=headers,
                    ) as upstream:
                        payload = await upstream.read()
                        status = upstream.status
                        reply_headers = {
                            k: v
                            for k, v in upstream.headers.items()
                            if k.lower() not in HOP_HEADERS
                        }
                    break
                except (TimeoutError, aiohttp.ClientConnectionError):
                    if time.monotonic() > deadline:
                        return web.Response(status=502, text="machine did not answer in time")
                    await asyncio.sleep(0.05)  # the machine is starting: hold the request
            if woke is not None:
                self.wakes.append(Wake(self.mode, woke, time.monotonic() - arrived, status))
            return web.Response(status=status, body=payload, headers=reply_headers)
        finally:
            self._inflight -= 1
            self.last_request = time.monotonic()

    async def serve(self, port: int) -> web.AppRunner:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.hold_s))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._watcher = asyncio.create_task(self._idle_watch())
        return runner

    async def close(self, runner: web.AppRunner) -> None:
        self._watcher.cancel()
        await self.session.close()
        await runner.cleanup()
