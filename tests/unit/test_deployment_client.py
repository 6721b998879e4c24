"""DeploymentClient maps Serve's failures to the API's errors (fake handle, no Ray cluster)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from serve_app.deployment_client import (
    GRPC_MAX_PAYLOAD_BYTES,
    DeploymentClient,
    grpc_model_calls,
    routable_replicas,
)
from serve_app.embeddings.jobs import JOB_MAX_TOKENS, EmbedJob
from serve_app.embeddings.serving import payload_bytes
from serve_app.errors import ApiError
from serve_app.metrics import QUEUE_DEPTH


class FakeResponse:
    """Awaitable like Serve's DeploymentResponse, with its ``cancel()``."""

    def __init__(self, outcome, method: FakeMethod):
        self.outcome = outcome
        self.method = method

    def __await__(self):
        return self._respond().__await__()

    async def _respond(self):
        if isinstance(self.outcome, float):
            await asyncio.sleep(self.outcome)
            return "late"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def cancel(self) -> None:
        self.method.cancelled += 1


class FakeMethod:
    def __init__(self, outcomes: list):
        self.outcomes = outcomes
        self.calls = 0
        self.cancelled = 0

    def remote(self, arg):
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        return FakeResponse(outcome, self)


class FakeHandle:
    def __init__(self, outcomes: list):
        self.embed = FakeMethod(outcomes)


def call(outcomes: list, timeout_s: float = 1.0, idempotent: bool = True):
    handle = FakeHandle(outcomes)
    client = DeploymentClient("embeddings", handle, timeout_s=timeout_s, retry_after_s=3)  # type: ignore[arg-type]
    return asyncio.run(client.call("embed", ["x"], idempotent=idempotent)), handle


def error_of(outcomes: list, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(outcomes, **kwargs)
    return info.value


def test_success_passes_through_and_queue_depth_returns_to_zero():
    result, handle = call(["ok"])
    assert result == "ok"
    assert handle.embed.calls == 1
    assert QUEUE_DEPTH.labels("embeddings")._value.get() == 0


def test_backpressure_is_503_with_retry_after():
    error = error_of([BackPressureError(num_queued_requests=10, max_queued_requests=10)])
    assert (error.status, error.code) == (503, "overloaded")
    assert error.headers["Retry-After"] == "3"


def test_timeout_is_408_and_cancels_the_call():
    handle = FakeHandle([5.0])
    client = DeploymentClient("embeddings", handle, timeout_s=0.05, retry_after_s=3)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as info:
        asyncio.run(client.call("embed", ["x"]))
    assert (info.value.status, info.value.code) == (408, "timeout")
    assert handle.embed.cancelled == 1  # the replica drops it instead of computing it


def test_a_caller_that_goes_away_cancels_the_call():
    handle = FakeHandle([5.0])
    client = DeploymentClient("embeddings", handle, timeout_s=10, retry_after_s=3)  # type: ignore[arg-type]

    async def main():
        task = asyncio.create_task(client.call("embed", ["x"]))
        await asyncio.sleep(0.05)
        task.cancel()  # the HTTP client disconnected
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert handle.embed.cancelled == 1
    assert QUEUE_DEPTH.labels("embeddings")._value.get() == 0


def test_deployment_unavailable_is_503():
    error = error_of([DeploymentUnavailableError("embeddings")])
    assert (error.status, error.code) == (503, "unavailable")


def test_replica_death_is_retried_once_when_idempotent():
    result, handle = call([ActorDiedError(), "ok"])
    assert result == "ok"
    assert handle.embed.calls == 2
    error = error_of([ActorDiedError(), ActorDiedError()])
    assert (error.status, error.code) == (503, "replica_failed")
    error = error_of([ActorDiedError(), "ok"], idempotent=False)
    assert error.code == "replica_failed"


class TransportHandle:
    """A handle whose ``options(_by_reference=False)`` copy answers "by value"."""

    def __init__(self, by_reference: bool = True):
        self.by_reference = by_reference
        self.copies: list[TransportHandle] = []
        self.embed = FakeMethod(["by reference" if by_reference else "by value"])

    def options(self, _by_reference: bool = True) -> TransportHandle:
        copy = TransportHandle(_by_reference)
        self.copies.append(copy)
        return copy


def transport_of(grpc: bool, payload_bytes: int | None) -> str:
    client = DeploymentClient("embeddings", TransportHandle(), 1.0, 3, grpc=grpc)  # type: ignore[arg-type]
    return asyncio.run(client.call("embed", ["x"], payload_bytes=payload_bytes))


def test_small_calls_go_by_value_over_grpc_when_enabled():
    assert transport_of(True, 1000) == "by value"
    assert transport_of(True, GRPC_MAX_PAYLOAD_BYTES) == "by value"


def test_large_or_unsized_calls_and_grpc_off_go_by_reference():
    assert transport_of(True, GRPC_MAX_PAYLOAD_BYTES + 1) == "by reference"
    assert transport_of(True, None) == "by reference"
    assert transport_of(False, 1000) == "by reference"


def test_the_by_value_handle_is_made_once():
    handle = TransportHandle()
    client = DeploymentClient("embeddings", handle, 1.0, 3, grpc=True)  # type: ignore[arg-type]
    for _ in range(3):
        assert asyncio.run(client.call("embed", ["x"], payload_bytes=10)) == "by value"
    assert len(handle.copies) == 1
    assert handle.copies[0].embed.calls == 3
    assert client.transport == "grpc"


def test_grpc_model_calls_setting():
    assert grpc_model_calls("on") is True
    assert grpc_model_calls("off") is False


def test_payload_bytes_bounds_texts_and_vectors():
    one_long = EmbedJob(["🥕" * 10_000], 256)  # 4 bytes a character in UTF-8
    assert payload_bytes(one_long) >= len(one_long.texts[0].encode())
    many_short = EmbedJob(["a"] * 1000, 3000)
    assert payload_bytes(many_short) >= 1000 * 384 * 4
    # the largest call the default limits allow still fits Serve's 4 MiB gRPC messages
    biggest_answer = EmbedJob(["a"] * (JOB_MAX_TOKENS // 3), JOB_MAX_TOKENS)
    assert payload_bytes(biggest_answer) <= GRPC_MAX_PAYLOAD_BYTES
    longest_texts = EmbedJob(["a" * 20_000] * (JOB_MAX_TOKENS // 256), JOB_MAX_TOKENS)
    assert payload_bytes(longest_texts) <= GRPC_MAX_PAYLOAD_BYTES


class RoutedHandle(FakeHandle):
    """A fake handle that says how many replicas its router knows, the way Ray 2.60's
    handles keep it (``routable_replicas`` reads it)."""

    def __init__(self, outcomes: list, replicas: int | None):
        super().__init__(outcomes)
        self.populated = replicas is not None
        request_router = SimpleNamespace(curr_replicas=dict.fromkeys(range(replicas or 0)))
        self._router = SimpleNamespace(
            _asyncio_router=SimpleNamespace(request_router=request_router)
        )

    def running_replicas_populated(self) -> bool:
        return self.populated


@pytest.mark.parametrize(("replicas", "woken"), [(0, 1), (1, 0), (None, 0)])
def test_a_call_that_finds_no_replica_wakes_the_standby(replicas, woken):
    """At zero replicas (known from the router's replica list) a call wakes the
    deployment's standby worker; with a replica, or before the list is known, it does not."""
    wakes: list[int] = []
    handle = RoutedHandle(["ok"], replicas)
    client = DeploymentClient(
        "embeddings", handle, timeout_s=1, retry_after_s=3, wake=lambda: wakes.append(1)
    )  # type: ignore[arg-type]

    async def run():
        answer = await client.call("embed", ["x"])
        await asyncio.sleep(0.05)  # the wake runs on a thread, not awaited
        return answer

    assert asyncio.run(run()) == "ok"
    assert len(wakes) == woken
    assert routable_replicas(handle) == replicas  # type: ignore[arg-type]


def test_routable_replicas_is_none_where_rays_internals_differ():
    assert routable_replicas(FakeHandle(["ok"])) is None  # type: ignore[arg-type]


def wakes_total(answered_by: str) -> float:
    from serve_app.metrics import REGISTRY

    value = REGISTRY.get_sample_value(
        "serve_app_wakes_total", {"model": "embeddings", "answered_by": answered_by}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("serve_s", "early_s", "early", "woke", "by", "cancelled"),
    [
        # the standby answers first; Serve's call goes on (Serve adds the replica for it)
        (0.5, 0, "standby", 1, "standby", 0),
        # ... or, for a call that woke no standby (another had), is cancelled
        (0.5, 0, "standby", 0, "standby", 1),
        (0.5, 0, None, 1, "serve", 0),  # it could not answer: Serve's call answers
        (0.1, 0.5, "standby", 1, "serve", 0),  # Serve answers first
    ],
)
def test_the_woken_standby_answers_when_it_is_first(serve_s, early_s, early, woke, by, cancelled):
    """At zero replicas the client also asks the woken standby (``early``, blocking, on a
    thread); the first answer is the call's. Serve's call of the call that woke the standby
    is left to run (its answer dropped), any other's is cancelled."""
    import time

    handle = RoutedHandle([serve_s], 0)
    asked: list[tuple] = []

    def from_standby(method, arg, timeout_s):
        asked.append((method, arg, timeout_s))
        time.sleep(early_s)
        return early

    client = DeploymentClient(
        "embeddings", handle, timeout_s=2, retry_after_s=3, wake=lambda: woke, early=from_standby
    )  # type: ignore[arg-type]
    before = wakes_total(by)

    async def run():
        answer = await client.call("embed", ["x"])
        left = len(client._left_running)
        await asyncio.sleep(0.6)  # Serve's call, left running, ends and is let go
        return answer, left, len(client._left_running)

    answer, left, after = asyncio.run(run())
    assert answer == ("standby" if by == "standby" else "late")
    assert asked == [("embed", ["x"], 2)]
    assert handle.embed.cancelled == cancelled
    assert (left, after) == ((1, 0) if by == "standby" and woke else (0, 0))
    assert wakes_total(by) == before + 1


def test_with_a_replica_the_standby_is_not_asked():
    asked: list[int] = []
    handle = RoutedHandle(["ok"], 1)
    client = DeploymentClient(
        "embeddings",
        handle,
        timeout_s=1,
        retry_after_s=3,
        wake=lambda: 1,
        early=lambda *args: asked.append(1),
    )  # type: ignore[arg-type]
    assert asyncio.run(client.call("embed", ["x"])) == "ok"
    assert asked == []
