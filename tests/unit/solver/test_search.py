"""The search (``search.solve``) against an exhaustive enumeration written in helpers.py,
independently of the solver."""

from __future__ import annotations

import random
import time

import pytest

from benchmarks.data.plan_data import week_request
from serve_app.solver.encoding import Encoding
from serve_app.solver.problem import Limits
from serve_app.solver.protocol import PlanRequest
from serve_app.solver.search import solve
from tests.helpers.solver import (
    base_request,
    brute_force,
    dec,
    random_instance,
    shopping_cost,
    violations,
)


def test_optimal_on_200_random_instances_matches_exhaustive_search():
    """In 10 of these instances the relaxation's first optimum cannot be laid out over the days
    and is cut."""
    rng = random.Random(2026)
    statuses = {"optimal": 0, "infeasible": 0}
    for n in range(200):
        req = random_instance(rng)
        expected = brute_force(req)
        result = solve(PlanRequest.model_validate(req), Limits())
        where = f"instance {n}: {req}"
        if expected is None:
            assert result.status == "infeasible", where
            assert result.plan == [] and result.explanation, where
        else:
            assert result.status == "optimal", where
            plan = {(s["day"] - 1, s["meal"]): s["recipe_id"] for s in result.plan}
            assert violations(req, plan) == [], where
            counts: dict[str, int] = {}
            for rid in plan.values():
                counts[rid] = counts.get(rid, 0) + 1
            assert shopping_cost(req, counts) == expected, where
            assert result.total_cost == float(round(expected, 2)), where
            assert sum(dec(i["cost"]) for i in result.shopping_list) == pytest.approx(
                float(expected), abs=0.011
            )
        statuses[result.status] += 1
    # The generator must exercise both outcomes.
    assert statuses["optimal"] >= 50 and statuses["infeasible"] >= 10, statuses


@pytest.mark.parametrize(
    ("constraints", "phrase"),
    [
        ({"budget": 2.0}, "budget 2.00"),
        ({"daily": {"protein_g": {"min": 80}}}, "daily protein_g min 80"),
        ({"daily": {"calories": {"max": 900}}}, "daily calories max 900"),
        ({"max_repeats": 1}, "max_repeats 1"),  # 2 breakfasts for 3 days
        # Only one vegetarian dinner for 3 days: both constraints are in the conflict.
        ({"require_tags": ["vegetarian"], "max_repeats": 2}, "max_repeats 2"),
        ({"require_tags": ["vegetarian"], "max_repeats": 2}, "require_tags [vegetarian]"),
        ({"require_tags": ["vegan"]}, "no breakfast recipe with tags [vegan]"),
        ({"exclude_items": ["rice"]}, "no dinner recipe without [rice]"),
    ],
)
def test_infeasible_requests_name_the_conflicting_constraint(constraints, phrase):
    result = solve(PlanRequest.model_validate(base_request(**constraints)))
    assert result.status == "infeasible"
    assert phrase in result.explanation, result.explanation
    assert result.plan == [] and result.total_cost is None


def test_unsat_core_is_minimal():
    # Protein 80 a day is impossible on its own; the budget is irrelevant and not named.
    req = base_request(budget=100.0, daily={"protein_g": {"min": 80}})
    assert solve(PlanRequest.model_validate(req)).explanation == ["daily protein_g min 80"]


def test_pantry_is_used_first_and_packages_are_whole():
    req = base_request(require_tags=["vegetarian"])
    result = solve(PlanRequest.model_validate(req))
    assert result.status == "optimal"
    rice = next(i for i in result.shopping_list if i["item"] == "rice")
    # Three curries need 450 g of rice; 300 g are in the pantry: one 1000 g package.
    assert (rice["packages"], rice["quantity"], rice["cost"]) == (1, 1000.0, 2.49)
    assert result.daily_nutrition[0]["day"] == 1
    assert set(result.daily_nutrition[0]) == {"day", "calories", "protein_g"}


def test_timeout_returns_promptly_with_the_best_plan_so_far():
    req = PlanRequest.model_validate(week_request(200, seed=3, timeout_ms=1000))
    started = time.monotonic()
    result = solve(req, Limits())
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.0, elapsed
    assert result.status in ("timeout", "optimal")
    if result.status == "timeout":
        assert "time limit 1000 ms" in result.explanation[0]
        if result.plan:
            assert len(result.plan) == 21 and result.total_cost is not None


def test_timeout_is_capped_by_the_limit():
    req = PlanRequest.model_validate(week_request(200, seed=4, timeout_ms=600_000))
    started = time.monotonic()
    solve(req, Limits(max_timeout_ms=500))
    assert time.monotonic() - started < 0.5 + 1.0


def test_the_deadline_passing_while_a_plan_is_read_is_not_an_error(monkeypatch):
    """The watchdog interrupts Z3 at the deadline; a model being read then must not raise
    Z3's 'canceled' (a 500): the read finishes, and the solve ends with the plan it has."""
    original = Encoding.plan_of
    calls = []

    def slow_read(self, model):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.6)  # the 0.3 s deadline (and the watchdog) passes mid-read
        return original(self, model)

    monkeypatch.setattr(Encoding, "plan_of", slow_read)
    req = PlanRequest.model_validate(week_request(20, seed=1, timeout_ms=300))
    result = solve(req, Limits())
    assert calls and result.status in ("timeout", "feasible", "optimal")
    assert result.plan  # the first plan, read in full
