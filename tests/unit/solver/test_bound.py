"""The count relaxation as a MILP (``bound.py``, HiGHS): its proof and its cancellation."""

from __future__ import annotations

import time

from benchmarks.data.plan_data import week_request
from serve_app.solver.bound import CountMilp, proves
from serve_app.solver.problem import Limits, validate
from serve_app.solver.protocol import PlanRequest


def test_a_bound_proves_only_what_integer_costs_allow():
    assert proves(1267, 1267.0) and proves(1267, 1266.2)
    assert not proves(1267, 1266.0)  # a plan costing 1266 is not ruled out
    assert not proves(1267, None)


def test_a_running_bound_stops_when_cancelled():
    """HiGHS runs on its own thread while Z3 looks for the first plan; a request that phase 1
    ends (infeasible, out of time) cancels it rather than leaving it to its time limit."""
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
