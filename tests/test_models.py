"""ModelClient maps Serve's failures to the API's errors (fake handle, no Ray cluster)."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from serve_app.errors import ApiError
from serve_app.metrics import QUEUE_DEPTH
from serve_app.models import ModelClient


class FakeMethod:
    def __init__(self, outcomes: list):
        self.outcomes = outcomes
        self.calls = 0

    def remote(self, arg):
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1

        async def respond():
            if isinstance(outcome, float):
                await asyncio.sleep(outcome)
                return "late"
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return respond()


class FakeHandle:
    def __init__(self, outcomes: list):
        self.embed = FakeMethod(outcomes)


def call(outcomes: list, timeout_s: float = 1.0, idempotent: bool = True):
    handle = FakeHandle(outcomes)
    client = ModelClient("embeddings", handle, timeout_s=timeout_s, retry_after_s=3)  # type: ignore[arg-type]
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


def test_timeout_is_408():
    error = error_of([5.0], timeout_s=0.05)
    assert (error.status, error.code) == (408, "timeout")


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
