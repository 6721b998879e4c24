"""The Z3 model against an exhaustive enumeration written here, independently of the solver."""

from __future__ import annotations

import itertools
import math
import random
import time
from fractions import Fraction

import pytest

from benchmarks.plan_data import week_request
from serve_app.solver.model import Limits, PlanInvalid, solve
from serve_app.solver.protocol import PlanRequest

ITEMS = ["rice", "beans", "milk", "eggs"]
UNITS = {"rice": "g", "beans": "g", "milk": "ml", "eggs": "pc"}


def dec(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def random_instance(rng: random.Random) -> dict:
    days = rng.choice([2, 3])
    meals = ["breakfast", "dinner"][: rng.choice([1, 2])]
    per_meal = rng.choice([3, 4, 5, 6])
    while per_meal ** (days * len(meals)) > 4096:
        per_meal -= 1
    recipes = []
    for meal in meals:
        for k in range(per_meal):
            items = rng.sample(ITEMS, rng.randint(1, 3))
            recipes.append(
                {
                    "id": f"{meal[0]}{k}",
                    "meal": meal,
                    "nutrition": {
                        "calories": rng.choice([300, 450, 500.5, 650, 800]),
                        "protein_g": rng.choice([5, 12.5, 20, 35]),
                    },
                    "ingredients": [
                        {"item": i, "quantity": rng.choice([50, 100, 150.5, 250]), "unit": UNITS[i]}
                        for i in items
                    ],
                    "tags": rng.sample(["veg", "quick"], rng.randint(0, 2)),
                }
            )
    prices = [
        {
            "item": i,
            "unit": UNITS[i],
            "package_quantity": rng.choice([100, 250, 400, 1000]),
            "package_price": rng.choice([0.99, 1.49, 2.25, 3.10]),
        }
        for i in ITEMS
    ]
    pantry = [
        {"item": i, "quantity": rng.choice([0, 60, 200]), "unit": UNITS[i]}
        for i in rng.sample(ITEMS, 2)
    ]
    constraints: dict = {}
    if rng.random() < 0.5:
        constraints["max_repeats"] = rng.choice([1, 2])
    if rng.random() < 0.5:
        constraints["budget"] = rng.choice([3.0, 6.5, 10.0, 20.0])
    if rng.random() < 0.5:
        low = rng.choice([300, 500, 900])
        constraints["daily"] = {"calories": {"min": low, "max": low + rng.choice([300, 800])}}
    if rng.random() < 0.3:
        constraints.setdefault("daily", {})["protein_g"] = {"min": rng.choice([10, 25, 40])}
    if rng.random() < 0.2:
        constraints["require_tags"] = ["veg"]
    if rng.random() < 0.2:
        constraints["exclude_items"] = [rng.choice(ITEMS)]
    return {
        "days": days,
        "meals": meals,
        "recipes": recipes,
        "prices": prices,
        "pantry": pantry,
        "constraints": constraints,
        "timeout_ms": 20_000,
    }


def shopping_cost(req: dict, counts: dict[str, int]) -> Fraction:
    need: dict[str, Fraction] = {}
    by_id = {r["id"]: r for r in req["recipes"]}
    for rid, n in counts.items():
        for ing in by_id[rid]["ingredients"]:
            need[ing["item"]] = need.get(ing["item"], Fraction(0)) + dec(ing["quantity"]) * n
    pantry = {p["item"]: dec(p["quantity"]) for p in req["pantry"]}
    prices = {p["item"]: p for p in req["prices"]}
    total = Fraction(0)
    for item, q in need.items():
        missing = q - pantry.get(item, Fraction(0))
        if missing > 0:
            package, price = prices[item]["package_quantity"], prices[item]["package_price"]
            total += math.ceil(missing / dec(package)) * dec(price)
    return total


def violations(req: dict, plan: dict[tuple[int, str], str]) -> list[str]:
    """Every constraint the plan breaks (empty when it is valid)."""
    c = req["constraints"]
    by_id = {r["id"]: r for r in req["recipes"]}
    broken = []
    counts: dict[str, int] = {}
    for (_day, meal), rid in plan.items():
        r = by_id[rid]
        counts[rid] = counts.get(rid, 0) + 1
        if r["meal"] != meal:
            broken.append(f"{rid} is not a {meal}")
        if not set(c.get("require_tags", [])) <= set(r["tags"]):
            broken.append(f"{rid} lacks tags")
        if set(c.get("exclude_items", [])) & {i["item"] for i in r["ingredients"]}:
            broken.append(f"{rid} has an excluded item")
    if len(plan) != req["days"] * len(req["meals"]):
        broken.append("slots missing")
    if "max_repeats" in c and max(counts.values()) > c["max_repeats"]:
        broken.append("max_repeats")
    for day in range(req["days"]):
        for nutrient, bound in c.get("daily", {}).items():
            total = sum(
                dec(by_id[plan[day, m]]["nutrition"].get(nutrient, 0)) for m in req["meals"]
            )
            if "min" in bound and total < dec(bound["min"]):
                broken.append(f"day {day} {nutrient} min")
            if "max" in bound and total > dec(bound["max"]):
                broken.append(f"day {day} {nutrient} max")
    if "budget" in c and shopping_cost(req, counts) > dec(c["budget"]):
        broken.append("budget")
    return broken


def brute_force(req: dict) -> Fraction | None:
    """The least cost over every possible plan, or None when none is valid."""
    slots = [(d, m) for d in range(req["days"]) for m in req["meals"]]
    options = [[r["id"] for r in req["recipes"] if r["meal"] == m] for _, m in slots]
    best = None
    for choice in itertools.product(*options):
        plan = dict(zip(slots, choice, strict=True))
        if violations(req, plan):
            continue
        counts: dict[str, int] = {}
        for rid in choice:
            counts[rid] = counts.get(rid, 0) + 1
        cost = shopping_cost(req, counts)
        if best is None or cost < best:
            best = cost
    return best


@pytest.mark.parametrize("bound", ["milp", "maxsat"])
def test_optimal_on_200_random_instances_matches_exhaustive_search(bound):
    """Both ways of proving the bound (HiGHS, the default, and Z3's MaxSAT); in 10 of these
    instances the relaxation's first optimum cannot be laid out over the days and is cut."""
    rng = random.Random(2026)
    statuses = {"optimal": 0, "infeasible": 0}
    for n in range(200):
        req = random_instance(rng)
        expected = brute_force(req)
        result = solve(PlanRequest.model_validate(req), Limits(bound=bound))
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


def base_request(**constraints) -> dict:
    recipes = [
        {"id": "oats", "meal": "breakfast", "nutrition": {"calories": 350, "protein_g": 12},
         "ingredients": [{"item": "oats", "quantity": 80, "unit": "g"}], "tags": ["vegetarian"]},
        {"id": "eggs", "meal": "breakfast", "nutrition": {"calories": 300, "protein_g": 20},
         "ingredients": [{"item": "eggs", "quantity": 2, "unit": "pc"}], "tags": ["vegetarian"]},
        {"id": "curry", "meal": "dinner", "nutrition": {"calories": 700, "protein_g": 25},
         "ingredients": [{"item": "chickpeas", "quantity": 240, "unit": "g"},
                         {"item": "rice", "quantity": 150, "unit": "g"}], "tags": ["vegetarian"]},
        {"id": "chicken", "meal": "dinner", "nutrition": {"calories": 750, "protein_g": 45},
         "ingredients": [{"item": "chicken", "quantity": 250, "unit": "g"},
                         {"item": "rice", "quantity": 150, "unit": "g"}], "tags": []},
    ]  # fmt: skip
    prices = [
        {"item": "oats", "unit": "g", "package_quantity": 1000, "package_price": 1.99},
        {"item": "eggs", "unit": "pc", "package_quantity": 12, "package_price": 3.49},
        {"item": "chickpeas", "unit": "g", "package_quantity": 400, "package_price": 0.89},
        {"item": "rice", "unit": "g", "package_quantity": 1000, "package_price": 2.49},
        {"item": "chicken", "unit": "g", "package_quantity": 1000, "package_price": 8.99},
    ]
    return {
        "days": 3,
        "meals": ["breakfast", "dinner"],
        "recipes": recipes,
        "prices": prices,
        "pantry": [{"item": "rice", "quantity": 300, "unit": "g"}],
        "constraints": constraints,
    }


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


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (lambda r: r["prices"].pop(), 422, "no price for 'chicken'"),
        (lambda r: r["prices"][4].update(unit="kg"), 422, "priced per 'kg'"),
        (lambda r: r["recipes"].append(dict(r["recipes"][0])), 422, "duplicate id 'oats'"),
        (lambda r: r["meals"].append("lunch"), 422, "no recipe has meal 'lunch'"),
        (lambda r: r["meals"].append("dinner"), 422, "'dinner' is listed twice"),
        (lambda r: r["pantry"][0].update(unit="kg"), 422, "priced in 'g'"),
        (lambda r: r["prices"].append(dict(r["prices"][0])), 422, "priced twice"),
        (lambda r: r.update(days=40), 422, "days: 40; at most 31"),
        (lambda r: r["constraints"].update(daily={"fibre_g": {"min": 5}}), 422, "fibre_g"),
    ],
)
def test_invalid_requests(mutate, status, message):
    req = base_request()
    mutate(req)
    with pytest.raises(PlanInvalid, match=message) as info:
        solve(PlanRequest.model_validate(req))
    assert info.value.status == status


def test_too_many_recipes_is_413():
    req = PlanRequest.model_validate(week_request(60, seed=1))
    with pytest.raises(PlanInvalid) as info:
        solve(req, Limits(max_recipes=50))
    assert info.value.status == 413


@pytest.mark.parametrize(
    "bad",
    [
        {"prices": [{"item": "x", "unit": "g", "package_quantity": 0, "package_price": 1}]},
        {"prices": [{"item": "x", "unit": "g", "package_quantity": 1, "package_price": -1}]},
        {"pantry": [{"item": "x", "quantity": -5, "unit": "g"}]},
        {"constraints": {"daily": {"calories": {"min": 900, "max": 800}}}},
        {"constraints": {"max_repeats": 0}},
        {"days": 0},
        {"meals": []},
    ],
)
def test_schema_rejects_negative_and_empty_values(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        PlanRequest.model_validate({**base_request(), **bad})


def test_a_bound_proves_only_what_integer_costs_allow():
    from serve_app.solver.bound import proves

    assert proves(1267, 1267.0) and proves(1267, 1266.2)
    assert not proves(1267, 1266.0)  # a plan costing 1266 is not ruled out
    assert not proves(1267, None)


def test_a_running_bound_stops_when_cancelled():
    """HiGHS runs on its own thread while Z3 looks for the first plan; a request that phase 1
    ends (infeasible, out of time) cancels it rather than leaving it to its time limit."""
    from serve_app.solver.bound import CountMilp
    from serve_app.solver.model import validate

    req = PlanRequest.model_validate(week_request(200, seed=10))
    milp = CountMilp(validate(req, Limits()))
    milp.start(30)  # about 1.4 s to the optimum on this machine
    time.sleep(0.1)
    started = time.monotonic()
    milp.cancel()
    relaxed = milp.result()
    assert time.monotonic() - started < 1.0
    assert (relaxed.state, relaxed.reason) == ("timeout", "canceled")
    assert relaxed.bound is None


def test_settings_choose_the_bound(monkeypatch):
    from serve_app.settings import Settings
    from serve_app.solver.serving import limits_from

    assert limits_from(Settings()).bound == "milp"
    monkeypatch.setenv("SERVE_APP_PLANS_BOUND", "maxsat")
    assert limits_from(Settings()).bound == "maxsat"
