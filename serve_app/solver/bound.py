"""The count relaxation as a mixed-integer program, solved by HiGHS (``highspy``).

How often each recipe is used, not when (daily bounds summed over the plan, so every plan's
counts fit): ``c_r`` uses of recipe ``r``, ``b_i`` packages of item ``i``, cost
``sum(price_i * b_i)``, on the Z3 model's exact integers. Its optimum is a lower bound on the
plan's cost (docs/models.md); counts that cannot be laid out over the days are ``cut``. HiGHS
runs without Python's lock, so ``start`` overlaps it with Z3's phase 1. Presolve is off: on five
seeded 200-recipe weeks it cost more than it saved (0.7-2.3 s mean without, 1.1-2.9 s with).
"""

from __future__ import annotations

import itertools
import math
import threading
from fractions import Fraction

import highspy
import numpy as np

from serve_app.solver.problem import Problem, Relaxed, exact, scaled


class CountMilp:
    """The program, its cuts, and at most one HiGHS solve running (``start`` ... ``result``)."""

    def __init__(self, problem: Problem):
        p = problem
        c = p.request.constraints
        self.repeats = min(c.max_repeats or p.days, p.days)
        self.recipes = [r for meal in p.meals for r in p.candidates[meal]]
        self.column = {r: k for k, r in enumerate(self.recipes)}
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
        if budget_row and budget_int is not None:
            self.rows.append((budget_row, -math.inf, budget_int))
        self.unary: dict[int, list[int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._answer: Relaxed | None = None

    def _variable(self, upper: int, cost: int) -> int:
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

    def start(self, time_limit_s: float) -> None:
        """Start solving the program as it stands on a thread (``result`` waits for it)."""
        self._stop.clear()
        self._answer = None
        self._thread = threading.Thread(
            target=self._run, args=(time_limit_s,), name="highs", daemon=True
        )
        self._thread.start()

    def result(self) -> Relaxed:
        assert self._thread is not None, "start() first"
        self._thread.join()
        assert self._answer is not None
        return self._answer

    def cancel(self) -> None:
        """Stop a running solve soon (its result is then a timeout); no wait."""
        self._stop.set()

    def _run(self, time_limit_s: float) -> None:
        try:
            self._answer = self._highs(time_limit_s)
        except Exception as exc:  # reported as the relaxation's answer, not lost on the thread
            self._answer = Relaxed("timeout", None, None, f"HiGHS failed: {exc!r}")

    def _highs(self, time_limit_s: float) -> Relaxed:
        n = len(self.cost)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, len(self.rows)
        lp.col_cost_ = np.array(self.cost, dtype=float)
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = np.array(self.upper, dtype=float)
        lp.row_lower_ = np.array([lo for _, lo, _ in self.rows], dtype=float)
        lp.row_upper_ = np.array([hi for _, _, hi in self.rows], dtype=float)
        # Row-wise as built; HiGHS makes it column-wise when the model is passed.
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.cumsum([0] + [len(row) for row, _, _ in self.rows], dtype=np.int32)
        lp.a_matrix_.index_ = np.array([c for row, _, _ in self.rows for c in row], dtype=np.int32)
        lp.a_matrix_.value_ = np.array(
            [v for row, _, _ in self.rows for v in row.values()], dtype=float
        )
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("presolve", "off")
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("time_limit", max(0.01, time_limit_s))

        def interrupt(event: highspy.HighsCallbackEvent) -> None:
            if self._stop.is_set():
                event.interrupt()

        h.cbMipInterrupt += interrupt
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return Relaxed("infeasible", None, None)
        info = h.getInfo()
        counts = None
        if info.primal_solution_status == 2:  # a feasible point
            x = h.getSolution().col_value
            counts = {r: round(x[self.column[r]]) for r in self.recipes}
        if status == highspy.HighsModelStatus.kOptimal:
            return Relaxed("optimal", counts, info.mip_dual_bound)
        if status in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kInterrupt):
            reason = "timeout" if status == highspy.HighsModelStatus.kTimeLimit else "canceled"
        else:
            reason = f"HiGHS stopped: {h.modelStatusToString(status)}"
        return Relaxed("timeout", counts, None, reason)


def proves(cost: int, bound: float | None) -> bool:
    """Whether ``bound`` rules out every integer cost below ``cost`` (a 1e-6 relative margin
    covers HiGHS's tolerances)."""
    return bound is not None and bound > cost - 1 + 1e-6 * max(1, abs(cost))
