"""Ray Serve deployment for meal plans: one Z3 solve per request, off the event loop.

Solving is not batched: each request is its own optimisation problem. Concurrency per replica
is ``max_ongoing_requests`` in the config (Z3 releases the GIL inside its C calls, and every
solve has its own ``z3.Context``, so solves on threads run in parallel). The module imports
neither Z3 nor HiGHS (the Serve app's build step imports it); the replica imports ``search.py``,
and with it both solvers, when it starts, not in its first solve.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ray import serve

from serve_app.settings import get_settings
from serve_app.solver.problem import limits_from
from serve_app.solver.protocol import PlanRequest


@serve.deployment(name="solver")
class SolverDeployment:
    def __init__(self) -> None:
        # Imports Z3 and HiGHS: at start, not in a solve.
        from serve_app.solver import search

        self.search = search
        self.limits = limits_from(get_settings())

    async def solve(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = PlanRequest.model_validate(payload)
        result = await asyncio.to_thread(self.search.solve, request, self.limits)
        return dataclasses.asdict(result)

    def info(self) -> dict[str, Any]:
        import z3  # already imported by search.py in __init__

        return {
            "status": "ready",
            "device": "cpu",
            "z3": z3.get_version_string(),
            "bound": "milp",
        }
