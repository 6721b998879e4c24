"""POST /v1/plans: validation at the ingress (a fast 422/413; no Z3 or HiGHS loaded there), the
solve in the solver deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve_app.errors import ApiError
from serve_app.metrics import BATCH_SECONDS
from serve_app.responses import FastJSONResponse
from serve_app.settings import Settings
from serve_app.solver.problem import PlanInvalid, limits_from, validate
from serve_app.solver.protocol import PlanRequest

if TYPE_CHECKING:  # the ingress side: importable without Ray
    from serve_app.deployment_client import DeploymentClient


class PlanService:
    def __init__(self, client: DeploymentClient, settings: Settings):
        self.client = client
        self.limits = limits_from(settings)

    async def plan(self, body: PlanRequest) -> FastJSONResponse:
        try:
            validate(body, self.limits)  # the same checks the solver runs, before queueing
        except PlanInvalid as exc:
            code = "payload_too_large" if exc.status == 413 else "validation_error"
            raise ApiError(exc.status, code, str(exc)) from None
        result = await self.client.call("solve", body.model_dump())
        BATCH_SECONDS.labels("solver").observe(result.pop("solve_ms") / 1000)
        return FastJSONResponse(result)
