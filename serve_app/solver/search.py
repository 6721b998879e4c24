"""The meal-plan search in Z3 and HiGHS (``solve``; docs/models.md): phase 1 finds a first plan
or explains infeasibility, phase 2 proves the optimum on the count relaxation."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator

import z3

from serve_app.solver.bound import CountMilp, proves
from serve_app.solver.encoding import Encoding
from serve_app.solver.evaluation import PlanResult, build_result, evaluate
from serve_app.solver.problem import Limits, Problem, empty_domains, validate
from serve_app.solver.protocol import PlanRequest


def _remaining_ms(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))


def _proof_seconds(deadline: float) -> float:
    """Most of the time left, keeping a share to lay out the best counts if the proof runs out."""
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

    # HiGHS runs on its own thread during Z3's phase 1: on two cores they overlap, not add up.
    milp = CountMilp(problem)
    milp.start(_proof_seconds(deadline))
    try:
        enc = Encoding(problem)
        watchdog = _Watchdog(enc.ctx, deadline)
        try:
            result = _search(problem, enc, deadline, timeout_ms, milp, watchdog)
            return _finish(result, started)
        finally:
            watchdog.stop()
    finally:
        milp.cancel()  # phase 1 ended the solve (infeasible, out of time) or it is done


class _Watchdog:
    """Interrupts the context at the deadline: Z3's own timeout was seen overrun under load.
    A model read while Z3 is interrupted fails or comes back incomplete, so reads go through
    :meth:`reading`: one in progress finishes first, none starts after."""

    def __init__(self, ctx: z3.Context, deadline: float):
        self._ctx = ctx
        self._lock = threading.Lock()
        self.expired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()) + 0.05, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            self._ctx.interrupt()

    @contextlib.contextmanager
    def reading(self) -> Iterator[bool]:
        """Yields whether a model may be read (False once the deadline has passed)."""
        with self._lock:
            yield not self.expired

    def stop(self) -> None:
        self._timer.cancel()


def _search(
    problem: Problem,
    enc: Encoding,
    deadline: float,
    timeout_ms: int,
    milp: CountMilp,
    watchdog: _Watchdog,
) -> PlanResult:
    """Phase 1 (a first plan, or why there is none), then phase 2 (the optimum)."""
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
    with watchdog.reading() as may_read:
        best = enc.plan_of(solver.model()) if answer == z3.sat and may_read else None
    if best is None:
        return PlanResult(
            "timeout", explanation=[f"time limit {timeout_ms} ms reached before any plan was found"]
        )
    best_cost = evaluate(problem, best)[1]

    # Phase 2: lay the relaxation's optimal counts out over the days; cut off (by an unsat
    # core) counts that do not fit and try the next optimum. The first that fits is optimal.
    factor = problem.money()[2]
    layout = z3.Solver(ctx=ctx)
    # No core minimisation: 8-13 s per core on the 200-recipe weeks, for cores already small.
    layout.set("core.minimize", False)
    layout.add(*enc.hard)
    for name, constraints in enc.groups:
        if not name.startswith("budget"):  # the counts fix the cost
            layout.add(*constraints)
    status, reason = "timeout", ""
    for round_ in itertools.count():
        relaxed = milp.result()  # started before phase 1, or after the last cut
        if relaxed.state == "infeasible":  # cannot happen (the first plan's counts fit)
            status, reason = "feasible", "the count relaxation became unsatisfiable"
            break
        if relaxed.counts is None:
            reason = relaxed.reason or "no counts within the time limit"
            break
        counts = relaxed.counts
        flags = {}
        # Only the recipes in use (the others are 0 anyway): cores stay among a dozen recipes.
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
        with watchdog.reading() as may_read:
            if not may_read:
                reason = "canceled at the time limit"
                break
            plan = enc.plan_of(layout.model()) if fits == z3.sat else None
            named = {str(c) for c in layout.unsat_core()} if fits == z3.unsat else set()
        if plan is not None:
            cost = evaluate(problem, plan)[1]
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
        # Z3 sometimes gives an empty core here; cutting the whole count vector is always valid.
        core = [r for f, r in flags.items() if str(f) in named] or list(flags.values())
        milp.cut({r: counts[r] for r in core})
        milp.start(_proof_seconds(deadline))
    # Z3 reports its own time limit as "timeout", "canceled" or "sat.canceled".
    out_of_time = time.monotonic() > deadline - 0.05 or "timeout" in reason or "canceled" in reason
    if status == "timeout" and not out_of_time:
        status = "feasible"
    result = build_result(problem, best, status)
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
