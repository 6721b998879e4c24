"""The meal-plan model in Z3: no Ray, no FastAPI.

Slots are days x meals; a Boolean ``x[d, m, r]`` says recipe ``r`` fills meal ``m`` of day ``d``
(pseudo-Boolean constraints, no if-then-else chains over recipe indices). Shopping: for each
item, the packages ``p_i`` (integers) must cover the plan's need minus the pantry; the objective
is the least total cost. All numbers are exact: every decimal from the request becomes a
``Fraction`` and each constraint is scaled by the least common multiple of its denominators, so
Z3 sees integers only and money is never rounded. Each solve has its own ``z3.Context``.

Named constraint groups ("budget 20.00", "daily protein_g min 60", ...) are tracked with
assumption literals; an unsat core over them is the explanation of an infeasible request.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import z3

from serve_app.solver.protocol import PlanRequest

if TYPE_CHECKING:
    from serve_app.solver.bound import CountMilp


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
    # What proves phase 2's lower bound: "milp" (HiGHS on the count relaxation, bound.py) or
    # "maxsat" (Z3's MaxSAT on the same relaxation; proves small plans, not 50+ recipes).
    bound: str = "milp"


@dataclass
class PlanResult:
    status: str  # optimal | feasible | infeasible | timeout
    plan: list[dict[str, Any]] = field(default_factory=list)
    shopping_list: list[dict[str, Any]] = field(default_factory=list)
    total_cost: float | None = None
    daily_nutrition: list[dict[str, Any]] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    solve_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "plan": self.plan,
            "shopping_list": self.shopping_list,
            "total_cost": self.total_cost,
            "daily_nutrition": self.daily_nutrition,
            "explanation": self.explanation,
        }


@dataclass
class Relaxed:
    """One solve of the count relaxation: ``state`` is ``optimal``, ``infeasible`` or
    ``timeout``; ``counts`` (recipe -> uses) when a solution was found; ``bound`` a proven
    lower bound on the cost in the money units of ``Problem.money`` (None when none was
    proven); ``reason`` why it stopped short."""

    state: str
    counts: dict[int, int] | None
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
        """``item``'s quantity in each of ``recipes``, the pantry's and the package's, as
        integers on one exact scale."""
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
    candidates: dict[str, list[int]] = {m: [] for m in req.meals}
    for i, recipe in enumerate(req.recipes):
        if recipe.meal in candidates:
            candidates[recipe.meal].append(i)
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


def _tags(tags: list[str]) -> str:
    return "[" + ", ".join(tags) + "]"


def empty_domains(problem: Problem) -> list[str]:
    """Meals that tags or excluded items leave without any recipe (explained directly)."""
    c = problem.request.constraints
    reasons = []
    for meal in problem.meals:
        recipes = [problem.recipes[i] for i in problem.candidates[meal]]
        tagged = [r for r in recipes if set(c.require_tags) <= set(r.tags)]
        if not tagged:
            reasons.append(f"no {meal} recipe with tags {_tags(c.require_tags)}")
            continue
        if not [r for r in tagged if not {i.item for i in r.ingredients} & set(c.exclude_items)]:
            with_tags = f" with tags {_tags(c.require_tags)}" if c.require_tags else ""
            reasons.append(f"no {meal} recipe{with_tags} without {_tags(c.exclude_items)}")
    return reasons


class Encoding:
    """The Z3 variables and constraint groups of one problem, in one context."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.ctx = z3.Context()
        ctx = self.ctx
        p = problem
        c = p.request.constraints
        self.x: dict[tuple[int, str, int], z3.BoolRef] = {}
        for d in range(p.days):
            for meal in p.meals:
                for r in p.candidates[meal]:
                    self.x[d, meal, r] = z3.Bool(f"x_{d}_{meal}_{r}", ctx)
        self.hard: list[z3.BoolRef] = []
        self.groups: list[tuple[str, list[z3.BoolRef]]] = []

        # Exactly one recipe per slot.
        for d in range(p.days):
            for meal in p.meals:
                slot = [(self.x[d, meal, r], 1) for r in p.candidates[meal]]
                self.hard.append(z3.PbEq(slot, 1))
        # Days are interchangeable: order them by the first meal's recipe (symmetry breaking).
        first = p.meals[0]
        if p.days > 1 and len(p.candidates[first]) > 1:
            order = list(enumerate(p.candidates[first]))
            index = [
                z3.Sum([z3.If(self.x[d, first, r], k, 0) for k, r in order]) for d in range(p.days)
            ]
            self.hard += [index[d] <= index[d + 1] for d in range(p.days - 1)]

        if c.max_repeats is not None:
            repeats = []
            for meal in p.meals:
                for r in p.candidates[meal]:
                    uses = [(self.x[d, meal, r], 1) for d in range(p.days)]
                    if len(uses) > c.max_repeats:
                        repeats.append(z3.PbLe(uses, c.max_repeats))
            self.groups.append((f"max_repeats {c.max_repeats}", repeats))
        if c.require_tags:
            banned = [
                z3.Not(v)
                for (d, meal, r), v in self.x.items()
                if not set(c.require_tags) <= set(p.recipes[r].tags)
            ]
            self.groups.append((f"require_tags {_tags(c.require_tags)}", banned))
        if c.exclude_items:
            excluded = set(c.exclude_items)
            banned = [z3.Not(v) for (d, meal, r), v in self.x.items() if excluded & set(p.needs[r])]
            self.groups.append((f"exclude_items {_tags(c.exclude_items)}", banned))
        for nutrient, bound in c.daily.items():
            for side, limit in (("min", bound.min), ("max", bound.max)):
                if limit is None:
                    continue
                group = []
                for d in range(p.days):
                    terms = [
                        (v, p.nutrition[r].get(nutrient, Fraction(0)))
                        for (dd, meal, r), v in self.x.items()
                        if dd == d
                    ]
                    ints, _ = scaled([w for _, w in terms] + [exact(limit)])
                    pairs = [(v, w) for (v, _), w in zip(terms, ints[:-1], strict=True) if w]
                    bound_int = ints[-1]
                    if not pairs:  # no recipe of the day has this nutrient: the sum is 0
                        group.append(z3.BoolVal(side == "max" or bound_int <= 0, ctx))
                    elif side == "min":
                        group.append(z3.PbGe(pairs, bound_int))
                    else:
                        group.append(z3.PbLe(pairs, bound_int))
                self.groups.append((f"daily {nutrient} {side} {fmt(limit)}", group))

        # Shopping: packages per item cover the plan's need beyond the pantry.
        price_int, budget_int, _ = p.money()
        cost_terms = []
        for k, item in enumerate(p.price):
            users = [(key, v) for key, v in self.x.items() if item in p.needs[key[2]]]
            if not users:
                continue
            quantities, have, package = p.quantities(item, [r for (_, _, r), _ in users])
            need = z3.Sum([z3.If(v, q, 0) for (_, v), q in zip(users, quantities, strict=True)])
            count = z3.Int(f"packages_{k}", ctx)
            upper = p.package_upper_bound(item)
            self.hard += [count >= 0, count <= upper, count * package >= need - have]
            if price_int[item]:
                cost_terms.append(count * price_int[item])
        self.cost = z3.Sum(cost_terms) if cost_terms else z3.IntVal(0, ctx)
        if budget_int is not None:
            self.groups.append((f"budget {float(c.budget):.2f}", [self.cost <= budget_int]))

    def plan_of(self, model: z3.ModelRef) -> dict[tuple[int, str], int]:
        chosen = {}
        for (d, meal, r), v in self.x.items():
            if z3.is_true(model.eval(v, model_completion=True)):
                chosen[d, meal] = r
        return chosen


class CountModel:
    """The relaxation that proves optimality: how often each recipe is used, not when.

    Cost depends only on the counts, and the daily bounds are kept summed over the plan, so
    every plan's counts satisfy this model with the same cost: its optimum is a lower bound.
    It is all Boolean (counts and packages in unary: ``u[r][j]`` = used more than j times,
    ``y[i][k]`` = more than k packages of item i) with the packages' prices as soft
    constraints, so Z3's core-guided MaxSAT proves the bound; days are gone, and with them the
    symmetry that makes the slot model hard to prove optimal.
    """

    def __init__(self, problem: Problem, ctx: z3.Context):
        p = problem
        c = p.request.constraints
        repeats = min(c.max_repeats or p.days, p.days)
        self.u: dict[int, list[z3.BoolRef]] = {}
        self.hard: list[z3.BoolRef] = []
        self.soft: list[tuple[z3.BoolRef, int]] = []
        banned_tags = set(c.require_tags)
        excluded = set(c.exclude_items)
        for meal in p.meals:
            uses = []
            for r in p.candidates[meal]:
                us = [z3.Bool(f"u_{r}_{j}", ctx) for j in range(repeats)]
                self.u[r] = us
                self.hard += [z3.Implies(a, b) for a, b in zip(us[1:], us[:-1], strict=True)]
                recipe = p.recipes[r]
                if not banned_tags <= set(recipe.tags) or excluded & set(p.needs[r]):
                    self.hard.append(z3.Not(us[0]))
                uses += [(u, 1) for u in us]
            self.hard.append(z3.PbEq(uses, p.days))
        for nutrient, bound in c.daily.items():
            recipes = list(self.u)
            values = [p.nutrition[r].get(nutrient, Fraction(0)) for r in recipes]
            for side, limit in (("min", bound.min), ("max", bound.max)):
                if limit is None:
                    continue
                ints, _ = scaled([*values, exact(limit) * p.days])
                weights = zip(recipes, ints, strict=False)
                terms = [(u, w) for r, w in weights if w for u in self.u[r]]
                if not terms:
                    self.hard.append(z3.BoolVal(side == "max" or ints[-1] <= 0, ctx))
                elif side == "min":
                    self.hard.append(z3.PbGe(terms, ints[-1]))
                else:
                    self.hard.append(z3.PbLe(terms, ints[-1]))
        price_int, budget_int, _ = p.money()
        cost_terms: list[tuple[z3.BoolRef, int]] = []
        for i, item in enumerate(p.price):
            users = [r for r in self.u if item in p.needs[r]]
            if not users:
                continue
            quantities, have, package = p.quantities(item, users)
            upper = p.package_upper_bound(item)
            ys = [z3.Bool(f"y_{i}_{k}", ctx) for k in range(upper)]
            self.hard += [z3.Implies(a, b) for a, b in zip(ys[1:], ys[:-1], strict=True)]
            # need <= pantry + package * bought  <=>  need + package * (not bought) <= ...
            terms = [(u, q) for r, q in zip(users, quantities, strict=True) for u in self.u[r]]
            terms += [(z3.Not(y), package) for y in ys]
            self.hard.append(z3.PbLe(terms, have + package * upper))
            if price_int[item]:
                self.soft += [(z3.Not(y), price_int[item]) for y in ys]
                cost_terms += [(y, price_int[item]) for y in ys]
        if budget_int is not None and cost_terms:
            self.hard.append(z3.PbLe(cost_terms, budget_int))

    def counts(self, model: z3.ModelRef) -> dict[int, int]:
        return {
            r: sum(1 for u in us if z3.is_true(model.eval(u, model_completion=True)))
            for r, us in self.u.items()
        }

    def equals(self, r: int, value: int) -> z3.BoolRef:
        """``count(r) == value`` in the unary encoding."""
        us = self.u[r]
        if value == 0:
            return z3.Not(us[0])
        if value >= len(us):
            return us[-1]
        return z3.And(us[value - 1], z3.Not(us[value]))


class MaxSatCounts:
    """Phase 2's relaxation solved by Z3's core-guided MaxSAT (``Limits.bound = "maxsat"``),
    with the same interface as ``bound.CountMilp``."""

    def __init__(self, problem: Problem, ctx: z3.Context):
        self.problem = problem
        self.model = CountModel(problem, ctx)
        self.opt = z3.Optimize(ctx=ctx)
        self.opt.set("maxsat_engine", "maxres")
        self.opt.add(*self.model.hard)
        for literal, weight in self.model.soft:
            self.opt.add_soft(literal, weight)

    def solve(self, time_limit_s: float) -> Relaxed:
        self.opt.set("timeout", max(1, int(time_limit_s * 1000)))
        answer = self.opt.check()
        if answer == z3.unsat:
            return Relaxed("infeasible", None, None)
        try:
            counts = self.model.counts(self.opt.model())
        except z3.Z3Exception:  # no model yet
            counts = None
        if answer != z3.sat:
            return Relaxed("timeout", counts, None, self.opt.reason_unknown())
        # The MaxSAT optimum is these counts' own cost.
        factor = self.problem.money()[2]
        return Relaxed("optimal", counts, float(_shopping(self.problem, counts)[1] * factor))

    def cut(self, counts: dict[int, int]) -> None:
        self.opt.add(z3.Or([z3.Not(self.model.equals(r, n)) for r, n in counts.items()]))


def _remaining_ms(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))


def _proof_seconds(deadline: float) -> float:
    """Time for one solve of the relaxation: most of what is left, keeping a share to lay out
    the best counts found if the proof runs out."""
    return _remaining_ms(deadline) * 0.85 / 1000


def solve(req: PlanRequest, limits: Limits | None = None) -> PlanResult:
    """Validate, then find the cheapest plan within ``req.timeout_ms`` (capped by the limits)."""
    limits = limits or Limits()
    started = time.monotonic()
    problem = validate(req, limits)
    timeout_ms = min(req.timeout_ms, limits.max_timeout_ms)
    deadline = started + timeout_ms / 1000
    reasons = empty_domains(problem)
    if reasons:
        return _finish(PlanResult("infeasible", explanation=reasons), started)

    from serve_app.solver.bound import CountMilp  # bound.py imports this module

    # HiGHS solves the count relaxation on its own thread while Z3 encodes the plan and looks
    # for a first one (phase 1): on two cores the two overlap instead of adding up.
    milp = None
    if limits.bound == "milp":
        milp = CountMilp(problem)
        milp.start(_proof_seconds(deadline))
    try:
        enc = Encoding(problem)
        # Z3 honours its timeout in most places but not all (an Optimize call was seen running
        # far past it under load): a watchdog interrupts the context at the deadline regardless.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()) + 0.05, enc.ctx.interrupt)
        watchdog.daemon = True
        watchdog.start()
        try:
            return _finish(_search(problem, enc, deadline, timeout_ms, milp), started)
        finally:
            watchdog.cancel()
    finally:
        if milp is not None:
            milp.cancel()  # phase 1 ended the solve (infeasible, out of time) or it is done


def _search(
    problem: Problem, enc: Encoding, deadline: float, timeout_ms: int, milp: CountMilp | None
) -> PlanResult:
    """Phase 1 (feasibility, explanation, a first plan) and phase 2 (the optimum). ``milp``:
    the count relaxation for HiGHS, already solving; None to prove the bound with Z3's MaxSAT."""
    from serve_app.solver.bound import proves  # bound.py imports this module

    ctx = enc.ctx
    # Phase 1: feasibility with tracked groups (an unsat core explains), and a first plan.
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", _remaining_ms(deadline))
    solver.set("core.minimize", True)
    solver.add(*enc.hard)
    tracks = []
    for k, (name, constraints) in enumerate(enc.groups):
        flag = z3.Bool(f"group_{k}", ctx)
        tracks.append((flag, name))
        solver.add(z3.Implies(flag, z3.And(constraints) if constraints else z3.BoolVal(True, ctx)))
    answer = solver.check(*[flag for flag, _ in tracks])
    if answer == z3.unsat:
        core = {str(flag) for flag in solver.unsat_core()}
        names = [name for flag, name in tracks if str(flag) in core]
        return PlanResult("infeasible", explanation=names)
    if answer != z3.sat:
        return PlanResult(
            "timeout", explanation=[f"time limit {timeout_ms} ms reached before any plan was found"]
        )
    best = enc.plan_of(solver.model())
    best_cost = _evaluate(problem, best)[1]

    # Phase 2: the count relaxation's optimum (a MILP by HiGHS, or Z3's MaxSAT), then a check
    # that its counts can be laid out over the days; counts that cannot are cut off (by an
    # unsat core) and the next optimum is tried. The first that fits is optimal.
    relaxation: MaxSatCounts | CountMilp = milp or MaxSatCounts(problem, ctx)
    factor = problem.money()[2]
    layout = z3.Solver(ctx=ctx)
    # No core minimisation here: on the 200-recipe weeks it took 8-13 s per core, and the
    # cores are among the dozen recipes in use anyway (see the flags below).
    layout.set("core.minimize", False)
    layout.add(*enc.hard)
    for name, constraints in enc.groups:
        if not name.startswith("budget"):  # the counts fix the cost
            layout.add(*constraints)
    status, reason = "timeout", ""
    for round_ in itertools.count():
        if round_ == 0 and milp is not None:
            relaxed = milp.result()  # started before phase 1
        else:
            relaxed = relaxation.solve(_proof_seconds(deadline))
        if relaxed.state == "infeasible":  # cannot happen (the first plan's counts fit)
            status, reason = "feasible", "the count relaxation became unsatisfiable"
            break
        if relaxed.counts is None:
            reason = relaxed.reason or "no counts within the time limit"
            break
        counts = relaxed.counts
        flags = {}
        # Only the recipes in use: their counts fill every slot, so the others are 0 anyway,
        # and a core (and the cut made of it) stays among a dozen recipes, not hundreds.
        for r, n in counts.items():
            if n == 0:
                continue
            meal = problem.recipes[r].meal
            flag = z3.Bool(f"fits_{round_}_{r}", ctx)
            uses = [(enc.x[d, meal, r], 1) for d in range(problem.days)]
            layout.add(z3.Implies(flag, z3.PbEq(uses, n)))
            flags[flag] = r
        layout.set("timeout", _remaining_ms(deadline))
        fits = layout.check(*flags)
        if fits == z3.sat:
            plan = enc.plan_of(layout.model())
            cost = _evaluate(problem, plan)[1]
            if cost <= best_cost:
                best, best_cost = plan, cost
            if relaxed.state == "optimal":
                if proves(int(cost * factor), relaxed.bound):
                    status = "optimal"
                else:
                    reason = "the relaxation's bound does not prove the plan optimal"
                break
        if relaxed.state != "optimal" or fits != z3.unsat:
            reason = reason or relaxed.reason or layout.reason_unknown()
            break
        named = {str(c) for c in layout.unsat_core()}
        core = [r for f, r in flags.items() if str(f) in named]
        # Z3 sometimes answers unsat with an empty core here; cutting the whole count vector
        # is always valid.
        core = core or list(flags.values())
        relaxation.cut({r: counts[r] for r in core})
    # Z3 reports its own time limit as "timeout", "canceled" or "sat.canceled".
    out_of_time = time.monotonic() > deadline - 0.05 or "timeout" in reason or "canceled" in reason
    if status == "timeout" and not out_of_time:
        status = "feasible"
    result = _result(problem, best, status)
    if status != "optimal":
        result.explanation = [
            f"time limit {timeout_ms} ms reached: best plan found so far, not proven optimal"
            if status == "timeout"
            else f"the solver stopped without proving optimality ({reason})"
        ]
    return result


def _finish(result: PlanResult, started: float) -> PlanResult:
    result.solve_ms = round((time.monotonic() - started) * 1000, 1)
    return result


def _counts(chosen: dict[tuple[int, str], int]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for r in chosen.values():
        counts[r] += 1
    return counts


def _evaluate(
    problem: Problem, chosen: dict[tuple[int, str], int]
) -> tuple[list[dict[str, Any]], Fraction]:
    """Shopping list and exact total cost of a plan: pantry first, whole packages."""
    return _shopping(problem, _counts(chosen))


def _shopping(problem: Problem, counts: dict[int, int]) -> tuple[list[dict[str, Any]], Fraction]:
    """Shopping list and exact total cost of using each recipe ``counts[r]`` times."""
    need: dict[str, Fraction] = defaultdict(Fraction)
    for r, n in counts.items():
        for item, q in problem.needs[r].items():
            need[item] += q * n
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


def exact_daily_totals(
    problem: Problem, chosen: dict[tuple[int, str], int]
) -> list[dict[str, Fraction]]:
    days = []
    for d in range(problem.days):
        totals = {n: Fraction(0) for n in problem.nutrients}
        for meal in problem.meals:
            for n, v in problem.nutrition[chosen[d, meal]].items():
                totals[n] += v
        days.append(totals)
    return days


def daily_totals(problem: Problem, chosen: dict[tuple[int, str], int]) -> list[dict[str, Any]]:
    return [
        {"day": d + 1, **{n: float(v) for n, v in totals.items()}}
        for d, totals in enumerate(exact_daily_totals(problem, chosen))
    ]


def _satisfies(problem: Problem, chosen: dict[tuple[int, str], int]) -> bool:
    """Checks a plan against every constraint, independently of Z3."""
    c = problem.request.constraints
    for d in range(problem.days):
        for meal in problem.meals:
            r = chosen.get((d, meal))
            if r is None or r not in problem.candidates[meal]:
                return False
            recipe = problem.recipes[r]
            if not set(c.require_tags) <= set(recipe.tags):
                return False
            if set(c.exclude_items) & set(problem.needs[r]):
                return False
    if c.max_repeats is not None and max(_counts(chosen).values()) > c.max_repeats:
        return False
    for day in exact_daily_totals(problem, chosen):
        for n, bound in c.daily.items():
            value = day[n]
            if bound.min is not None and value < exact(bound.min):
                return False
            if bound.max is not None and value > exact(bound.max):
                return False
    return c.budget is None or _evaluate(problem, chosen)[1] <= exact(c.budget)


def _result(problem: Problem, chosen: dict[tuple[int, str], int], status: str) -> PlanResult:
    shopping, total = _evaluate(problem, chosen)
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
