"""Ray Serve deployment for meal plans: one solve per request, on a thread, not batched.

Each solve has its own ``z3.Context`` and Z3 releases the GIL, so solves up to
``max_ongoing_requests`` run in parallel. Z3 and HiGHS are imported when the replica starts,
not when the Serve app is built.
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
