"""HTTP route for meal plans (no logic here)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from serve_app.solver.protocol import PlanRequest, PlanResponse

router = APIRouter(tags=["plans"])


@router.post("/v1/plans", response_model=PlanResponse)
async def create_plan(body: PlanRequest, request: Request) -> Response:
    """The cheapest meal plan and shopping list that meets the constraints (Z3)."""
    return await request.app.state.plans.plan(body)
