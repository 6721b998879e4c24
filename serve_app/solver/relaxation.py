"""The count relaxation in Z3's MaxSAT (the other way to prove phase 2's bound).

How often each recipe is used, not when: ``CountModel`` is the relaxation as Boolean constraints
with the packages' prices as soft constraints, and ``MaxSatCounts`` solves it with Z3's
core-guided MaxSAT (``Limits.bound = "maxsat"``), with the same interface as
``bound.CountMilp`` (HiGHS, the default). Imports z3, ``problem.py`` and ``evaluation.py``.
"""

from __future__ import annotations

from fractions import Fraction

import z3

from serve_app.solver.evaluation import shopping
from serve_app.solver.problem import Problem, Relaxed, exact, scaled


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
        return Relaxed("optimal", counts, float(shopping(self.problem, counts)[1] * factor))

    def cut(self, counts: dict[int, int]) -> None:
        self.opt.add(z3.Or([z3.Not(self.model.equals(r, n)) for r, n in counts.items()]))
