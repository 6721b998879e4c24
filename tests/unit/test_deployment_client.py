"""DeploymentClient maps Serve's failures to the API's errors (fake handle, no Ray cluster)."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from serve_app.deployment_client import DeploymentClient
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


def call(outcomes: list, timeout_s: float = 1.0):
    handle = FakeHandle(outcomes)
    client = DeploymentClient("embeddings", handle, timeout_s=timeout_s, retry_after_s=3)  # type: ignore[arg-type]
    return asyncio.run(client.call("embed", ["x"])), handle


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


def test_replica_death_is_retried_once():
    result, handle = call([ActorDiedError(), "ok"])
    assert result == "ok"
    assert handle.embed.calls == 2
    error = error_of([ActorDiedError(), ActorDiedError()])
    assert (error.status, error.code) == (503, "replica_failed")
