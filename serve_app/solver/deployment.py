"""Ray Serve deployment for meal plans: one Z3 solve per request, off the event loop.

Solving is not batched: each request is its own optimisation problem. Concurrency per replica
is ``max_ongoing_requests`` in the config (Z3 releases the GIL inside its C calls, and every
solve has its own ``z3.Context``, so solves on threads run in parallel).
"""

from __future__ import annotations

import asyncio
from typing import Any

import z3
from ray import serve

from serve_app.settings import get_settings
from serve_app.solver import bound  # noqa: F401  (imports HiGHS: at start, not in a solve)
from serve_app.solver.model import solve
from serve_app.solver.protocol import PlanRequest
from serve_app.solver.serving import limits_from


@serve.deployment(name="solver")
class SolverDeployment:
    def __init__(self) -> None:
        self.limits = limits_from(get_settings())

    async def solve(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = PlanRequest.model_validate(payload)
        result = await asyncio.to_thread(solve, request, self.limits)
        return {**result.to_dict(), "solve_ms": result.solve_ms}

    def info(self) -> dict[str, Any]:
        return {
            "status": "ready",
            "device": "cpu",
            "z3": z3.get_version_string(),
            "bound": self.limits.bound,
        }
