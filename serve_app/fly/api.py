"""A small client for the Fly Machines REST API (https://fly.io/docs/machines/api/): what the
operations CLI needs, with flyctl's retries and leases (docs/fly.md)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

NONCE_HEADER = "fly-machine-lease-nonce"
# The API's long-poll /wait answers within 60 s at most; longer waits poll again.
MAX_WAIT_S = 60


class FlyApiError(Exception):
    """An answer of the Machines API that is not a success (after retries)."""

    def __init__(self, status: int, message: str, code: str | None, method: str):
        self.status = status
        self.message = message
        self.code = code  # the body's "status" field, e.g. "insufficient_capacity"
        super().__init__(f"{method} -> {status}: {message}")


class InsufficientCapacity(FlyApiError):
    """The region (or the host of a stopped machine) has no room for the machine."""


class FlyTimeout(Exception):
    """A machine did not reach a state in time."""


def _capacity_error(status: int, message: str, code: str | None) -> bool:
    if code in ("insufficient_capacity", "volume_placement_capacity"):
        return True
    text = message.lower()
    # Older and host-level answers carry no code: 409/412 with flyd's own wording.
    return status in (409, 412) and (
        "insufficient" in text or "no capacity" in text or "could not reserve resource" in text
    )


@dataclass
class RetryPolicy:
    """How often and how long to retry; ``sleep`` is injectable for tests."""

    attempts: int = 6
    base_s: float = 0.5
    max_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            with suppress(ValueError):  # an HTTP date: fall back to backoff
                return min(self.max_s, max(0.0, float(retry_after)))
        # "Full jitter": a random delay up to the exponential bound spreads retries out.
        return self.rng.uniform(0, min(self.max_s, self.base_s * 2**attempt))


class MachinesClient:
    """The Machines API for one app."""

    def __init__(
        self,
        base_url: str,
        token: str,
        app: str,
        retry: RetryPolicy | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.app = app
        self.retry = retry or RetryPolicy()
        self.log = log or (lambda _msg: None)
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "serve-app-fly"},
            timeout=httpx.Timeout(30.0, read=MAX_WAIT_S + 15),
        )

    def __enter__(self) -> MachinesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    # -- transport ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        nonce: str | None = None,
        idempotent: bool = True,
    ) -> Any:
        """One API call with retries. 429 is always retried (the call was not processed);
        5xx and connection errors only when ``idempotent``."""
        url = f"/apps/{self.app}/machines{path}"
        headers = {NONCE_HEADER: nonce} if nonce else None
        label = f"{method} {url}"
        for attempt in range(self.retry.attempts):
            last = attempt + 1 == self.retry.attempts
            try:
                response = self.http.request(method, url, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                if not idempotent or last:
                    message = f"cannot reach the Machines API: {exc}"
                    raise FlyApiError(0, message, None, label) from None
                self._wait(attempt, None, f"{label}: {type(exc).__name__}")
                continue
            if response.status_code in (200, 201, 202):
                return response.json() if response.content else None
            status = response.status_code
            retryable = status == 429 or (status >= 500 and idempotent)
            if retryable and not last:
                self._wait(attempt, response.headers.get("retry-after"), f"{label}: {status}")
                continue
            raise self._error(response, label)
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = self.retry.delay(attempt, retry_after)
        self.log(f"  retrying in {delay:.1f} s ({why})")
        self.retry.sleep(delay)

    @staticmethod
    def _error(response: httpx.Response, label: str) -> FlyApiError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("error") or response.text or response.reason_phrase)
        code = body.get("status") if isinstance(body.get("status"), str) else None
        cls = (
            InsufficientCapacity
            if _capacity_error(response.status_code, message, code)
            else FlyApiError
        )
        return cls(response.status_code, message, code, label)

    # -- machines ----------------------------------------------------------------------

    def list_machines(self) -> list[dict[str, Any]]:
        return self.request("GET", "") or []

    def get_machine(self, machine_id: str) -> dict[str, Any]:
        return self.request("GET", f"/{machine_id}")

    def create_machine(self, config: dict[str, Any], region: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"config": config}
        if region:
            body["region"] = region
        # Not idempotent: a retried create after a 5xx could make a second machine.
        return self.request("POST", "", json=body, idempotent=False)

    def start(self, machine_id: str, nonce: str | None = None) -> dict[str, Any]:
        return self.request("POST", f"/{machine_id}/start", nonce=nonce)

    def stop(self, machine_id: str, nonce: str | None = None) -> Any:
        body = {"signal": "SIGTERM", "timeout": "60s"}
        return self.request("POST", f"/{machine_id}/stop", json=body, nonce=nonce)

    def destroy(self, machine_id: str, nonce: str | None = None) -> Any:
        return self.request("DELETE", f"/{machine_id}", nonce=nonce)

    def wait(
        self,
        machine_id: str,
        state: str,
        timeout_s: float = 120,
        instance_id: str | None = None,
    ) -> None:
        """Block until the machine is in ``state``; FlyTimeout after ``timeout_s``. Waiting for
        ``destroyed``, a 404 (the machine is already gone) counts as reached."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FlyTimeout(f"machine {machine_id} not {state} after {timeout_s:g} s")
            params: dict[str, Any] = {"state": state, "timeout": max(1, min(MAX_WAIT_S, int(left)))}
            if instance_id:
                params["instance_id"] = instance_id
            polled_at = time.monotonic()
            try:
                self.request("GET", f"/{machine_id}/wait", params=params)
                return
            except FlyApiError as exc:
                if exc.status == 404 and state == "destroyed":
                    return
                if exc.status != 408:  # 408: this long-poll ran out; poll again
                    raise
            # a 408 long before the poll's own timeout (a proxy in between): do not spin
            if time.monotonic() - polled_at < 1.0:
                self.retry.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    # -- leases ------------------------------------------------------------------------

    def acquire_lease(self, machine_id: str, ttl_s: int = 60, description: str = "") -> str:
        body = self.request(
            "POST",
            f"/{machine_id}/lease",
            json={"ttl": ttl_s, "description": description or "serve-app fly"},
        )
        return body["data"]["nonce"]

    def release_lease(self, machine_id: str, nonce: str) -> None:
        self.request("DELETE", f"/{machine_id}/lease", nonce=nonce)

    @contextmanager
    def lease(self, machine_id: str, ttl_s: int = 120, description: str = "") -> Iterator[str]:
        """Hold the machine's lease (no other client changes it meanwhile) for the block."""
        nonce = self.acquire_lease(machine_id, ttl_s, description)
        try:
            yield nonce
        finally:
            try:
                self.release_lease(machine_id, nonce)
            except FlyApiError as exc:
                if exc.status != 404:  # 404: gone with its machine; else it expires by itself
                    self.log(f"  could not release the lease on {machine_id}: {exc}")
