"""How the ingress calls a model deployment: timeouts, backpressure, retries."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from ray.serve.handle import DeploymentHandle

from serve_app.errors import ApiError, overloaded, retry_later
from serve_app.metrics import QUEUE_DEPTH

_REPLICA_GONE = (ActorDiedError, ActorUnavailableError, RayActorError, ReplicaUnavailableError)


class DeploymentClient:
    """One model deployment as the ingress sees it: timeouts, backpressure, retries."""

    def __init__(self, name: str, handle: DeploymentHandle, timeout_s: float, retry_after_s: int):
        self.name = name
        self.handle = handle
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s

    async def call(self, method: str, arg: Any) -> Any:
        """Call ``method(arg)`` on a replica; a replica that dies mid-call is retried once
        (every model call is idempotent)."""
        gauge = QUEUE_DEPTH.labels(self.name)
        gauge.inc()
        try:
            for _ in range(2):
                response = None
                try:
                    response = getattr(self.handle, method).remote(arg)
                    return await asyncio.wait_for(response, self.timeout_s)
                except (TimeoutError, asyncio.CancelledError) as exc:
                    # nobody waits any more (timeout, client gone): the replica drops the work
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
                    continue
            raise retry_later(
                "replica_failed",
                f"The {self.name} replica failed while serving this request; retry.",
                self.retry_after_s,
            )
        finally:
            gauge.dec()
