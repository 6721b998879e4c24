"""A STAND-IN for the Fly Machines API, for tests only: Fly's API cannot run here.

It follows the documented API (https://fly.io/docs/machines/api/machines-resource/) for what
`serve-app fly` uses: the paths ``/v1/apps/{app}/machines[/{id}[/start|stop|wait|lease]]``,
bearer-token auth, the Machine JSON (id, name, state, region, instance_id, private_ip,
config.guest / config.metadata.fly_process_group, created_at), the state machine
(created -> starting -> started -> stopping -> stopped -> destroying -> destroyed, each
transition taking a little time), ``/wait`` long-polls that answer 408 on timeout, leases
(``fly-machine-lease-nonce``; 409 when another holder has one), a rate limit per action and
machine (about 1 request/s, burst 3, answered 429), and the error bodies
``{"error": ..., "status": "insufficient_capacity"}``. Faults can be injected: 429s, 5xx and
capacity errors. It is not Fly: no VMs, no proxy, no real placement.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

APP = "grocery-planner-ai-test"  # the app and token the tests' stand-in serves
FLY_TOKEN = "fly-test-token"
NONCE_HEADER = "fly-machine-lease-nonce"
TRANSITION_S = 0.15  # how long starting/stopping/destroying take here


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    times: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Lease:
    nonce: str
    owner: str
    expires_at: float


class MachinesStandIn:
    def __init__(
        self, app_name: str, token: str, rate_limit: bool = True, forget_destroyed: bool = False
    ):
        self.app_name = app_name
        self.token = token
        self.rate_limit = rate_limit
        # Fly may forget a destroyed machine at once: then its id answers 404 (no "destroyed").
        self.forget_destroyed = forget_destroyed
        self.machines: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, Lease] = {}
        self.faults: list[Fault] = []
        self.capacity: dict[str, int] = {}  # region -> machines it can still create
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._ids = itertools.count(1)
        self._ips = itertools.count(2)
        self.api = self._build()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.url = ""

    # -- test helpers -----------------------------------------------------------------

    def add_machine(
        self, region: str = "iad", state: str = "started", group: str = "app", **guest: Any
    ) -> str:
        machine_id = f"{next(self._ids):014x}"
        self.machines[machine_id] = {
            "id": machine_id,
            "name": f"machine-{machine_id[-4:]}",
            "state": state,
            "region": region,
            "instance_id": secrets.token_hex(8).upper(),
            "private_ip": f"fdaa:0:1:a7b:1::{next(self._ips):x}",
            "created_at": f"2026-11-27T00:00:{len(self.machines):02d}Z",
            "config": {
                "image": "registry.fly.io/grocery-planner-ai:deployment-1",
                "guest": {"cpu_kind": "performance", "cpus": 4, "memory_mb": 8192, **guest},
                "metadata": {"fly_process_group": group},
                "env": {"SERVE_APP_CONFIG": "deployments/fly.yaml"},
            },
        }
        return machine_id

    def inject(
        self,
        method: str,
        path: str,
        status: int,
        error: str = "injected",
        times: int = 1,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests matching ``method`` and the ``path`` regex answer
        ``status`` with Fly's error body."""
        body: dict[str, Any] = {"error": error}
        if code:
            body["status"] = code
        self.faults.append(Fault(method, re.compile(path), status, body, times, headers or {}))

    def states(self) -> dict[str, str]:
        return {i: m["state"] for i, m in self.machines.items()}

    def count(self, method: str, pattern: str, status: int | None = None) -> int:
        return sum(
            1
            for m, p, s in self.requests
            if m == method and re.search(pattern, p) and (status is None or s == status)
        )

    # -- the API ----------------------------------------------------------------------

    def _build(self) -> FastAPI:
        api = FastAPI(title="Fly Machines API stand-in")
        prefix = "/v1/apps/{app}/machines"

        @api.middleware("http")
        async def gate(request: Request, call_next: Any) -> Any:
            response = await self._gate(request)
            if response is None:
                response = await call_next(request)
            self.requests.append((request.method, request.url.path, response.status_code))
            return response

        @api.get(prefix)
        async def list_machines(app: str, include_deleted: bool = False) -> Any:
            return [
                m for m in self.machines.values() if include_deleted or m["state"] != "destroyed"
            ]

        @api.post(prefix)
        async def create(app: str, request: Request) -> Any:
            body = await request.json()
            region = body.get("region") or "iad"
            if self.capacity.get(region, 1) <= 0:
                return error(
                    422,
                    f"insufficient resources to create new machine in {region}",
                    "insufficient_capacity",
                )
            if region in self.capacity:
                self.capacity[region] -= 1
            config = body.get("config")
            if not isinstance(config, dict) or not config.get("image"):
                return error(400, "config.image is required")
            machine_id = self.add_machine(region=region, state="created")
            machine = self.machines[machine_id]
            machine["config"] = config
            if body.get("name"):
                machine["name"] = body["name"]
            if not body.get("skip_launch"):
                self._transition(machine_id, "starting", "started")
            return machine

        @api.get(prefix + "/{machine_id}")
        async def get(app: str, machine_id: str) -> Any:
            return self._machine(machine_id) or not_found(machine_id)

        @api.post(prefix + "/{machine_id}/start")
        async def start(app: str, machine_id: str, request: Request) -> Any:
            machine = self._machine(machine_id)
            if machine is None:
                return not_found(machine_id)
            if (held := self._lease_conflict(machine_id, request)) is not None:
                return held
            previous = machine["state"]
            if previous in ("destroyed", "destroying"):
                return error(412, f"machine {machine_id} is {previous}")
            if previous in ("stopped", "created", "suspended"):
                self._transition(machine_id, "starting", "started")
            return {"previous_state": previous, "migrated": False, "new_host": ""}

        @api.post(prefix + "/{machine_id}/stop")
        async def stop(app: str, machine_id: str, request: Request) -> Any:
            machine = self._machine(machine_id)
            if machine is None:
                return not_found(machine_id)
            if (held := self._lease_conflict(machine_id, request)) is not None:
                return held
            if machine["state"] in ("started", "starting"):
                self._transition(machine_id, "stopping", "stopped")
            return {"ok": True}

        @api.delete(prefix + "/{machine_id}")
        async def destroy(app: str, machine_id: str, request: Request, force: bool = False) -> Any:
            machine = self._machine(machine_id)
            if machine is None:
                return not_found(machine_id)
            if (held := self._lease_conflict(machine_id, request)) is not None:
                return held
            if machine["state"] not in ("stopped", "created", "suspended") and not force:
                return error(412, f"unable to destroy machine {machine_id}, not currently stopped")
            self._transition(machine_id, "destroying", "destroyed")
            return {"ok": True}

        @api.get(prefix + "/{machine_id}/wait")
        async def wait(
            app: str,
            machine_id: str,
            state: str = "started",
            timeout: int = 60,
            instance_id: str | None = None,
        ) -> Any:
            if self._machine(machine_id) is None:
                return not_found(machine_id)
            if not 1 <= timeout <= 60:
                return error(400, "timeout must be between 1 and 60 seconds")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.machines[machine_id]["state"] == state:
                    return {"ok": True}
                await asyncio.sleep(0.02)
            return error(408, f"deadline_exceeded: machine did not reach {state}")

        @api.post(prefix + "/{machine_id}/lease")
        async def acquire(app: str, machine_id: str, request: Request) -> Any:
            if self._machine(machine_id) is None:
                return not_found(machine_id)
            body = await request.json() if await request.body() else {}
            ttl = int(body.get("ttl") or request.query_params.get("ttl") or 30)
            lease = self.leases.get(machine_id)
            now = time.time()
            if lease is not None and lease.expires_at > now:
                given = request.headers.get(NONCE_HEADER)
                if given != lease.nonce:
                    return error(409, f"lease currently held by {lease.owner}")
            lease = Lease(secrets.token_hex(8), "ops@example.com", now + ttl)
            self.leases[machine_id] = lease
            return {
                "status": "success",
                "data": {
                    "nonce": lease.nonce,
                    "expires_at": int(lease.expires_at),
                    "owner": lease.owner,
                    "description": body.get("description", ""),
                },
            }

        @api.delete(prefix + "/{machine_id}/lease")
        async def release(app: str, machine_id: str, request: Request) -> Any:
            lease = self.leases.get(machine_id)
            if lease is None:
                return error(404, "no lease")
            if request.headers.get(NONCE_HEADER) != lease.nonce:
                return error(409, "lease nonce does not match")
            del self.leases[machine_id]
            return {"ok": True}

        return api

    async def _gate(self, request: Request) -> JSONResponse | None:
        """Auth, unknown apps, injected faults and the rate limit, before any handler."""
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "unauthorized")
        parts = request.url.path.split("/")
        if len(parts) > 3 and parts[3] != self.app_name:
            return error(404, f"app {parts[3]} not found")
        for fault in self.faults:
            matches = fault.method == request.method and fault.path.search(request.url.path)
            if fault.times > 0 and matches:
                fault.times -= 1
                return JSONResponse(fault.body, fault.status, headers=fault.headers)
        if self.rate_limit:
            # ~1 request/s per action and machine, burst 3 (Fly's documented limit)
            action = request.method + ":" + re.sub(r"/[0-9a-f]{14}", "/ID", request.url.path)
            key = (action, "/".join(parts[5:6]))
            tokens, at = self.buckets.get(key, (3.0, time.monotonic()))
            now = time.monotonic()
            tokens = min(3.0, tokens + (now - at) * 1.0)
            if tokens < 1 and not request.url.path.endswith("/wait"):
                self.buckets[key] = (tokens, now)
                return error(429, "rate limit exceeded")
            self.buckets[key] = (tokens - 1, now)
        return None

    def _machine(self, machine_id: str) -> dict[str, Any] | None:
        return self.machines.get(machine_id)

    def _lease_conflict(self, machine_id: str, request: Request) -> JSONResponse | None:
        lease = self.leases.get(machine_id)
        if lease is None or lease.expires_at < time.time():
            return None
        if request.headers.get(NONCE_HEADER) != lease.nonce:
            return error(409, f"machine {machine_id} lease currently held by {lease.owner}")
        return None

    def _transition(self, machine_id: str, during: str, final: str) -> None:
        machine = self.machines[machine_id]
        machine["state"] = during

        def finish() -> None:
            if machine["state"] == during:
                machine["state"] = final
                machine["instance_id"] = secrets.token_hex(8).upper()
                if final == "destroyed" and self.forget_destroyed:
                    self.machines.pop(machine_id, None)
                    self.leases.pop(machine_id, None)

        threading.Timer(TRANSITION_S, finish).start()

    # -- serving ----------------------------------------------------------------------

    def start(self) -> str:
        from serve_app.net import free_port

        port = free_port()
        config = uvicorn.Config(self.api, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stand-in did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            assert self.thread is not None
            self.thread.join(10)


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if code:
        body["status"] = code
    return JSONResponse(body, status)


def not_found(machine_id: str) -> JSONResponse:
    return error(404, f"machine {machine_id} not found")
