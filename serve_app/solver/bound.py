"""The count relaxation as a mixed-integer program, solved by HiGHS (``scipy.optimize.milp``).

The same relaxation as ``CountModel`` in ``model.py`` (how often each recipe is used, not when;
the daily bounds summed over the plan), in integers: ``c_r`` uses of recipe ``r`` (0 to
``max_repeats``), ``b_i`` packages of item ``i``; cost ``sum(price_i * b_i)``. Every number is
the integer the Z3 model uses (``Problem.quantities`` and ``Problem.money``), so the program's
data are exact; its solution is checked afterwards, exactly, by the Z3 layout over the days and
by ``_evaluate`` in fractions. Its optimum is a lower bound on the plan's cost that HiGHS proves
by branch and bound on the LP relaxation, which Z3's MaxSAT engines could not do within 20 s
from 50 recipes up (README, "Meal-plan benchmark").

Counts that cannot be laid out over the days are cut off (``cut``) and the program solved again.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from serve_app.solver.model import Problem, Relaxed, exact, scaled


class CountMilp:
    """``cap``: a cost (money units) some plan is known to reach, so no better solution costs
    more; it prunes HiGHS's search (about 5% faster on the 200-recipe week)."""

    def __init__(self, problem: Problem, cap: int | None = None):
        p = problem
        c = p.request.constraints
        self.repeats = min(c.max_repeats or p.days, p.days)
        self.recipes = [r for meal in p.meals for r in p.candidates[meal]]
        self.column = {r: k for k, r in enumerate(self.recipes)}
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.cost: list[float] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []
        required, excluded = set(c.require_tags), set(c.exclude_items)
        for r in self.recipes:
            allowed = required <= set(p.recipes[r].tags) and not excluded & set(p.needs[r])
            self._variable(self.repeats if allowed else 0, 0)
        for meal in p.meals:
            self.rows.append(({self.column[r]: 1 for r in p.candidates[meal]}, p.days, p.days))
        for nutrient, bound in c.daily.items():
            values = [p.nutrition[r].get(nutrient, Fraction(0)) for r in self.recipes]
            for side, limit in (("min", bound.min), ("max", bound.max)):
                if limit is None:
                    continue
                ints, _ = scaled([*values, exact(limit) * p.days])
                row = {k: w for k, w in enumerate(ints[:-1]) if w}
                lo, hi = (ints[-1], math.inf) if side == "min" else (-math.inf, ints[-1])
                self.rows.append((row, lo, hi))
        price_int, budget_int, _ = p.money()
        budget_row: dict[int, float] = {}
        for item in p.price:
            users = [r for r in self.recipes if item in p.needs[r]]
            if not users:
                continue
            quantities, have, package = p.quantities(item, users)
            b = self._variable(p.package_upper_bound(item), price_int[item])
            row = {self.column[r]: q for r, q in zip(users, quantities, strict=True)}
            row[b] = -package
            self.rows.append((row, -math.inf, have))
            budget_row[b] = price_int[item]
        if budget_row and (budget_int is not None or cap is not None):
            limit = min(x for x in (budget_int, cap) if x is not None)
            self.rows.append((budget_row, -math.inf, limit))
        self.unary: dict[int, list[int]] = {}

    def _variable(self, upper: int, cost: int) -> int:
        self.lower.append(0)
        self.upper.append(upper)
        self.cost.append(cost)
        return len(self.cost) - 1

    def _unary(self, r: int) -> list[int]:
        """0/1 variables ``count(r) > j``, tied to ``c_r``, made when a cut first needs them."""
        if r not in self.unary:
            us = [self._variable(1, 0) for _ in range(self.repeats)]
            tie = {self.column[r]: 1} | {u: -1 for u in us}
            self.rows.append((tie, 0, 0))
            self.rows += [({hi: 1, lo: -1}, -math.inf, 0) for lo, hi in itertools.pairwise(us)]
            self.unary[r] = us
        return self.unary[r]

    def cut(self, counts: dict[int, int]) -> None:
        """No solution may use every recipe of ``counts`` exactly that often."""
        row: dict[int, float] = {}
        constant = 0
        for r, n in counts.items():
            us = self._unary(r)
            if n >= 1:  # count < n  <=>  not u[n-1]
                row[us[n - 1]] = row.get(us[n - 1], 0) - 1
                constant += 1
            if n < len(us):  # count > n  <=>  u[n]
                row[us[n]] = row.get(us[n], 0) + 1
        self.rows.append((row, 1 - constant, math.inf))

    def solve(self, time_limit_s: float) -> Relaxed:
        n = len(self.cost)
        data, rows, cols = [], [], []
        lo, hi = [], []
        for k, (row, low, high) in enumerate(self.rows):
            for col, value in row.items():
                rows.append(k)
                cols.append(col)
                data.append(value)
            lo.append(low)
            hi.append(high)
        matrix = csr_array((data, (rows, cols)), shape=(len(self.rows), n))
        result = milp(
            np.array(self.cost, dtype=float),
            constraints=LinearConstraint(matrix, lo, hi),
            integrality=np.ones(n),
            bounds=Bounds(self.lower, self.upper),
            options={"time_limit": max(0.01, time_limit_s), "mip_rel_gap": 0.0},
        )
        if result.status == 2:
            return Relaxed("infeasible", None, None)
        counts = None
        if result.x is not None:
            counts = {r: round(result.x[self.column[r]]) for r in self.recipes}
        if result.status == 0:
            return Relaxed("optimal", counts, result.mip_dual_bound)
        return Relaxed("timeout", counts, None)


def proves(cost: int, bound: float | None) -> bool:
    """Whether ``bound`` rules out every integer cost below ``cost`` (HiGHS's tolerances are
    1e-6 and smaller; a margin of 1e-6 of the cost keeps the claim on the safe side)."""
    return bound is not None and bound > cost - 1 + 1e-6 * max(1, abs(cost))
