"""A meal-plan request in exact numbers (``validate`` -> ``Problem``, or ``PlanInvalid``).

No Z3, no HiGHS, no Ray: the ingress validates with this module alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from serve_app.solver.protocol import PlanRequest

if TYPE_CHECKING:
    from serve_app.settings import Settings


class PlanInvalid(ValueError):
    """The request cannot be solved as given (422, or 413 for size): names the field."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    max_recipes: int = 500
    max_days: int = 31
    max_meals: int = 10
    max_timeout_ms: int = 30_000


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_recipes=settings.plans_max_recipes,
        max_days=settings.plans_max_days,
        max_meals=settings.plans_max_meals,
        max_timeout_ms=settings.plans_max_timeout_ms,
    )


@dataclass
class Relaxed:
    """One solve of the count relaxation (bound.py); ``bound`` is a proven lower bound on the
    cost in the units of ``Problem.money``, ``reason`` why it stopped short."""

    state: str  # optimal | infeasible | timeout
    counts: dict[int, int] | None  # recipe -> uses, when a solution was found
    bound: float | None
    reason: str = ""


def exact(value: float) -> Fraction:
    """The decimal the client wrote (2.49 -> 249/100), not the binary float."""
    return Fraction(repr(float(value)))


def scaled(values: list[Fraction]) -> tuple[list[int], int]:
    """Integers proportional to ``values`` and the factor used (LCM of denominators)."""
    factor = math.lcm(*(v.denominator for v in values)) if values else 1
    return [int(v * factor) for v in values], factor


def fmt(value: float | Fraction) -> str:
    number = float(value)
    return str(int(number)) if number == int(number) else f"{number:g}"


@dataclass
class Problem:
    """A validated request in exact numbers."""

    days: int
    meals: list[str]
    candidates: dict[str, list[int]]  # meal -> indices into recipes
    recipes: list[Any]
    needs: list[dict[str, Fraction]]  # per recipe: item -> quantity
    nutrition: list[dict[str, Fraction]]  # per recipe
    nutrients: list[str]
    price: dict[str, tuple[Fraction, Fraction, str]]  # item -> (package qty, price, unit)
    pantry: dict[str, Fraction]
    request: PlanRequest

    def package_upper_bound(self, item: str) -> int:
        """The most packages of ``item`` any plan can need: each slot's hungriest recipe."""
        most = self.days * sum(
            max(self.needs[r].get(item, Fraction(0)) for r in self.candidates[meal])
            for meal in self.meals
        )
        package = self.price[item][0]
        return max(0, math.ceil((most - self.pantry.get(item, Fraction(0))) / package))

    def quantities(self, item: str, recipes: list[int]) -> tuple[list[int], int, int]:
        """``item``'s quantity per recipe, in the pantry and per package, on one exact scale."""
        have = self.pantry.get(item, Fraction(0))
        ints, _ = scaled([*(self.needs[r][item] for r in recipes), have, self.price[item][0]])
        return ints[:-2], ints[-2], ints[-1]

    def money(self) -> tuple[dict[str, int], int | None, int]:
        """Package prices and the budget as integers on one exact scale, and that scale."""
        budget = self.request.constraints.budget
        values = [price for _, price, _ in self.price.values()]
        if budget is not None:
            values.append(exact(budget))
        ints, factor = scaled(values)
        prices = dict(zip(self.price, ints, strict=False))
        return prices, (ints[-1] if budget is not None else None), factor


def validate(req: PlanRequest, limits: Limits) -> Problem:
    """Everything that makes a request unsolvable as written, as a 422/413 naming the field."""
    if len(req.recipes) > limits.max_recipes:
        raise PlanInvalid(
            f"recipes: {len(req.recipes)} given; at most {limits.max_recipes}.", status=413
        )
    if req.days > limits.max_days:
        raise PlanInvalid(f"days: {req.days}; at most {limits.max_days}.")
    if len(req.meals) > limits.max_meals:
        raise PlanInvalid(f"meals: {len(req.meals)} given; at most {limits.max_meals}.")
    if len(set(req.meals)) != len(req.meals):
        dup = next(m for m in req.meals if req.meals.count(m) > 1)
        raise PlanInvalid(f"meals: {dup!r} is listed twice.")
    seen: set[str] = set()
    for i, recipe in enumerate(req.recipes):
        if recipe.id in seen:
            raise PlanInvalid(f"recipes[{i}].id: duplicate id {recipe.id!r}.")
        seen.add(recipe.id)
    price: dict[str, tuple[Fraction, Fraction, str]] = {}
    for i, p in enumerate(req.prices):
        if p.item in price:
            raise PlanInvalid(f"prices[{i}].item: {p.item!r} is priced twice.")
        price[p.item] = (exact(p.package_quantity), exact(p.package_price), p.unit)
    pantry: dict[str, Fraction] = {}
    for i, p in enumerate(req.pantry):
        if p.item in pantry:
            raise PlanInvalid(f"pantry[{i}].item: {p.item!r} is listed twice.")
        if p.item in price and price[p.item][2] != p.unit:
            raise PlanInvalid(
                f"pantry[{i}]: {p.item!r} is in {p.unit!r} but priced in {price[p.item][2]!r}."
            )
        pantry[p.item] = exact(p.quantity)
    candidates = {m: [i for i, r in enumerate(req.recipes) if r.meal == m] for m in req.meals}
    for j, meal in enumerate(req.meals):
        if not candidates[meal]:
            raise PlanInvalid(f"meals[{j}]: no recipe has meal {meal!r}.")
    needs: list[dict[str, Fraction]] = []
    for i, recipe in enumerate(req.recipes):
        need: dict[str, Fraction] = defaultdict(Fraction)
        planned = recipe.meal in candidates
        for k, ing in enumerate(recipe.ingredients):
            where = f"recipes[{i}].ingredients[{k}]"
            if planned and ing.item not in price:
                raise PlanInvalid(f"{where}: no price for {ing.item!r}.")
            if planned and price[ing.item][2] != ing.unit:
                raise PlanInvalid(
                    f"{where}: {ing.item!r} is in {ing.unit!r} here but priced per "
                    f"{price[ing.item][2]!r}."
                )
            need[ing.item] += exact(ing.quantity)
        needs.append(dict(need))
    nutrition = [{k: exact(v) for k, v in r.nutrition.items()} for r in req.recipes]
    nutrients = sorted({k for r in req.recipes for k in r.nutrition})
    for key in req.constraints.daily:
        if key not in nutrients:
            raise PlanInvalid(f"constraints.daily.{key}: no recipe gives {key!r}.")
    return Problem(
        days=req.days,
        meals=list(req.meals),
        candidates=candidates,
        recipes=list(req.recipes),
        needs=needs,
        nutrition=nutrition,
        nutrients=nutrients,
        price=price,
        pantry=pantry,
        request=req,
    )


def fmt_tags(tags: list[str]) -> str:
    return "[" + ", ".join(tags) + "]"


def empty_domains(problem: Problem) -> list[str]:
    """Meals that tags or excluded items leave without any recipe (explained directly)."""
    c = problem.request.constraints
    reasons = []
    for meal in problem.meals:
        recipes = [problem.recipes[i] for i in problem.candidates[meal]]
        tagged = [r for r in recipes if set(c.require_tags) <= set(r.tags)]
        if not tagged:
            reasons.append(f"no {meal} recipe with tags {fmt_tags(c.require_tags)}")
            continue
        if not [r for r in tagged if not {i.item for i in r.ingredients} & set(c.exclude_items)]:
            with_tags = f" with tags {fmt_tags(c.require_tags)}" if c.require_tags else ""
            reasons.append(f"no {meal} recipe{with_tags} without {fmt_tags(c.exclude_items)}")
    return reasons
