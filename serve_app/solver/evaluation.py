"""A plan's shopping list, cost, daily nutrition and API result, in exact fractions (no Z3).
A plan is ``chosen``: (day, meal) -> recipe index."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from serve_app.solver.problem import Problem


@dataclass
class PlanResult:
    status: str  # optimal | feasible | infeasible | timeout
    plan: list[dict[str, Any]] = field(default_factory=list)
    shopping_list: list[dict[str, Any]] = field(default_factory=list)
    total_cost: float | None = None
    daily_nutrition: list[dict[str, Any]] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    solve_ms: float = 0.0


def evaluate(
    problem: Problem, chosen: dict[tuple[int, str], int]
) -> tuple[list[dict[str, Any]], Fraction]:
    """Shopping list and exact total cost of a plan: pantry first, whole packages."""
    need: dict[str, Fraction] = defaultdict(Fraction)
    for r in chosen.values():
        for item, q in problem.needs[r].items():
            need[item] += q
    shopping, total = [], Fraction(0)
    for item in sorted(need):
        package, price, unit = problem.price[item]
        missing = need[item] - problem.pantry.get(item, Fraction(0))
        if missing <= 0:
            continue
        packages = math.ceil(missing / package)
        cost = packages * price
        total += cost
        shopping.append(
            {
                "item": item,
                "packages": packages,
                "quantity": float(packages * package),
                "unit": unit,
                "cost": float(round(cost, 2)),
            }
        )
    return shopping, total


def daily_totals(problem: Problem, chosen: dict[tuple[int, str], int]) -> list[dict[str, Any]]:
    days = []
    for d in range(problem.days):
        totals = {n: Fraction(0) for n in problem.nutrients}
        for meal in problem.meals:
            for n, v in problem.nutrition[chosen[d, meal]].items():
                totals[n] += v
        days.append({"day": d + 1, **{n: float(v) for n, v in totals.items()}})
    return days


def build_result(problem: Problem, chosen: dict[tuple[int, str], int], status: str) -> PlanResult:
    shopping, total = evaluate(problem, chosen)
    plan = [
        {"day": d + 1, "meal": meal, "recipe_id": problem.recipes[chosen[d, meal]].id}
        for d in range(problem.days)
        for meal in problem.meals
    ]
    return PlanResult(
        status,
        plan=plan,
        shopping_list=shopping,
        total_cost=float(round(total, 2)),
        daily_nutrition=daily_totals(problem, chosen),
    )
