"""How the ingress calls a model deployment: timeouts, backpressure, retries, transport."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from ray.serve.handle import DeploymentHandle

from serve_app.errors import ApiError, overloaded, retry_later
from serve_app.metrics import QUEUE_DEPTH, WAKES

_REPLICA_GONE = (ActorDiedError, ActorUnavailableError, RayActorError, ReplicaUnavailableError)


# Serve's gRPC transport between replicas refuses messages over 4 MiB (its
# RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH); larger calls go through Ray's object store.
GRPC_MAX_PAYLOAD_BYTES = 3 * 1024 * 1024


def grpc_model_calls(setting: str) -> bool:
    """Whether model calls may use Serve's gRPC transport. Ray 2.60 dials a replica at
    ``f"{node_ip}:{port}"``, which is no address when ``node_ip`` is IPv6, so "auto" uses it
    only when every live node of the cluster has an IPv4 address."""
    if setting != "auto":
        return setting == "on"
    import ray

    addresses = [node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")]
    return bool(addresses) and all(_is_ipv4(address) for address in addresses)


def _is_ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def routable_replicas(handle: DeploymentHandle) -> int | None:
    """How many replicas ``handle``'s router can send a call to now; None while it does not
    know (no call made yet, the replica list not yet received from the controller) or where
    Ray's internals differ from 2.60's (the router's replica list is not public API)."""
    try:
        if not handle.running_replicas_populated():
            return None
        return len(handle._router._asyncio_router.request_router.curr_replicas)
    except AttributeError:
        return None


def _retrieve(task: asyncio.Future) -> None:
    """Take a finished task's exception, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


class DeploymentClient:
    """One model deployment as the ingress sees it: timeouts, backpressure, retries.

    With ``grpc``, calls whose caller declares a payload of at most
    ``GRPC_MAX_PAYLOAD_BYTES`` (arguments and answer) go over Serve's gRPC transport, by
    value, instead of as Ray actor calls with results in the object store: less CPU per call
    in the ingress and the replica. Everything else, and every call without ``grpc``, goes
    by reference. Both share one router (one queue view, one set of autoscaling metrics).

    ``wake`` is called (on a thread) when a call finds no replica to go to: the deployment
    is at zero replicas and the call waits for Serve to start one. ``early(method, arg,
    timeout_s)`` (blocking, on a thread) then asks the woken standby worker for the answer
    too (serve_app/standby_answer.py): whichever answers first is the call's answer (Serve's
    call left behind goes on for the call that did the wake, so that Serve adds the replica;
    others are cancelled); None from it (no standby could answer) leaves the call to Serve.
    """

    def __init__(
        self,
        name: str,
        handle: DeploymentHandle,
        timeout_s: float,
        retry_after_s: int,
        grpc: bool = False,
        wake: Callable[[], Any] | None = None,
        early: Callable[[str, Any, float], Any] | None = None,
    ):
        self.name = name
        self.handle = handle
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.grpc = grpc
        self.wake = wake
        self.early = early
        self._left_running: set[asyncio.Future] = set()  # Serve's calls a standby answered
        self._methods: dict[tuple[str, bool], Any] = {}

    @property
    def transport(self) -> str:
        """How calls travel, as /health reports it: "grpc" (calls up to
        ``GRPC_MAX_PAYLOAD_BYTES``; larger ones by Ray) or "ray"."""
        return "grpc" if self.grpc else "ray"

    def _method(self, method: str, by_value: bool) -> Any:
        """The handle method for one transport, made once (``options`` copies a handle)."""
        key = (method, by_value)
        found = self._methods.get(key)
        if found is None:
            handle = self.handle.options(_by_reference=False) if by_value else self.handle
            found = self._methods[key] = getattr(handle, method)
        return found

    async def call(
        self, method: str, arg: Any, idempotent: bool = True, payload_bytes: int | None = None
    ) -> Any:
        """Call ``method(arg)`` on a replica; a replica that dies mid-call is retried once.
        ``payload_bytes``: an upper bound on the call's arguments and answer, when known."""
        attempts = 2 if idempotent else 1
        by_value = (
            self.grpc and payload_bytes is not None and payload_bytes <= GRPC_MAX_PAYLOAD_BYTES
        )
        gauge = QUEUE_DEPTH.labels(self.name)
        gauge.inc()
        try:
            for attempt in range(attempts):
                response = None
                try:
                    response = self._method(method, by_value).remote(arg)
                    if self.wake is not None and routable_replicas(self.handle) == 0:
                        return await asyncio.wait_for(
                            self._from_zero(response, method, arg), self.timeout_s
                        )
                    return await asyncio.wait_for(response, self.timeout_s)
                except (TimeoutError, asyncio.CancelledError) as exc:
                    # Nobody waits for the answer any more (timed out, or the client went
                    # away): tell the replica, so that queued work is dropped, not computed.
                    if response is not None:
                        response.cancel()
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    raise ApiError(
                        408,
                        "timeout",
                        f"The {self.name} model did not answer within {self.timeout_s:g} s.",
                    ) from None
                except BackPressureError:
                    raise overloaded(self.name, self.retry_after_s) from None
                except DeploymentUnavailableError:
                    raise retry_later(
                        "unavailable",
                        f"The {self.name} deployment is not running.",
                        self.retry_after_s,
                    ) from None
                except _REPLICA_GONE:
                    if attempt + 1 < attempts:
                        continue
                    raise ApiError(
                        503,
                        "replica_failed",
                        f"The {self.name} replica failed while serving this request; retry.",
                        {"Retry-After": str(self.retry_after_s)},
                    ) from None
        finally:
            gauge.dec()
        raise AssertionError("unreachable")

    async def _from_zero(self, response: Any, method: str, arg: Any) -> Any:
        """A call that found no replica: wake the standby; the answer of Serve's call
        (``response``) or, when it comes first, the standby's own (``early``). Serve's call
        of the call that woke a standby is left to run when the standby answers first (its
        answer is dropped): Serve's controller adds the replica because of that waiting
        call, and the standby may answer before the controller has seen it. Serve's calls of
        the others are cancelled."""
        loop = asyncio.get_running_loop()
        woken = loop.run_in_executor(None, self.wake)
        woken.add_done_callback(_retrieve)  # a failed wake leaves the call to Serve
        if self.early is None:
            answer = await response
            WAKES.labels(self.name, "serve").inc()
            return answer

        async def from_standby() -> Any:
            try:
                await woken
                return await loop.run_in_executor(None, self.early, method, arg, self.timeout_s)
            except Exception:  # the call to Serve answers instead
                return None

        async def from_serve() -> Any:
            try:
                return await asyncio.wait_for(response, self.timeout_s)
            except TimeoutError:
                response.cancel()
                raise

        served = asyncio.ensure_future(from_serve())
        early = asyncio.ensure_future(from_standby())
        keep_served = False
        try:
            await asyncio.wait({served, early}, return_when=asyncio.FIRST_COMPLETED)
            if not served.done() and early.result() is not None:
                keep_served = bool(woken.done() and not woken.exception() and woken.result())
                if not keep_served:
                    response.cancel()
                WAKES.labels(self.name, "standby").inc()
                return early.result()
            answer = await served
            WAKES.labels(self.name, "serve").inc()
            return answer
        finally:
            for task in (early, served):
                if task is served and keep_served:
                    self._left_running.add(served)  # kept until it ends (asyncio holds weakly)
                    served.add_done_callback(self._left_running.discard)
                else:
                    task.cancel()
                # what the one left behind raises (RequestCancelledError) is nobody's answer
                task.add_done_callback(_retrieve)
