"""Validation of plan requests (``problem.py``, and the schema in ``protocol.py``), and the
solver modules the ingress imports staying free of Z3 and HiGHS."""

from __future__ import annotations

import pytest

from benchmarks.data.plan_data import week_request
from serve_app.settings import Settings
from serve_app.solver.problem import Limits, PlanInvalid, limits_from
from serve_app.solver.protocol import PlanRequest
from serve_app.solver.search import solve
from tests.helpers.solver import base_request


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


def test_settings_set_the_limits(monkeypatch):
    assert limits_from(Settings()).max_timeout_ms == 20_000
    monkeypatch.setenv("SERVE_APP_PLANS_MAX_RECIPES", "7")
    assert limits_from(Settings()).max_recipes == 7
