"""POST /v1/plans through the real Serve app (the solver deployment, real Z3)."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from benchmarks.data.plan_data import week_request
from tests.helpers.solver import base_request

pytestmark = pytest.mark.e2e


def post(server, body: object, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/plans", json=body, headers=server.headers, timeout=timeout)


def test_optimal_plan_with_shopping_list(serve_server):
    response = post(serve_server, base_request(require_tags=["vegetarian"], budget=20.0))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "optimal"
    assert len(body["plan"]) == 6
    assert {s["recipe_id"] for s in body["plan"] if s["meal"] == "dinner"} == {"curry"}
    assert body["total_cost"] == pytest.approx(sum(i["cost"] for i in body["shopping_list"]))
    assert body["explanation"] == []
    assert [d["day"] for d in body["daily_nutrition"]] == [1, 2, 3]


def test_infeasible_plan_is_explained(serve_server):
    response = post(serve_server, base_request(budget=1.0))
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["plan"], body["total_cost"]) == ("infeasible", [], None)
    assert body["explanation"] == ["budget 1.00"]


def test_timeout_answers_within_the_limit(serve_server):
    body = week_request(200, seed=5, timeout_ms=1500)
    started = time.monotonic()
    response = post(serve_server, body)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("timeout", "optimal")
    assert elapsed < 1.5 + 1.0 + 1.0, elapsed  # the limit, a second, and the HTTP round trip


def test_concurrent_solves_are_all_answered(serve_server):
    budgets = [1, 5, 20, 50]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: post(serve_server, base_request(budget=b)), budgets))
    assert [r.status_code for r in results] == [200] * 4
    statuses = [r.json()["status"] for r in results]
    assert statuses[0] == "infeasible" and statuses[-1] == "optimal", statuses


@pytest.mark.parametrize(
    ("change", "status", "code", "text"),
    [
        ({"days": 40}, 422, "validation_error", "days: 40; at most 31"),
        ({"recipes": []}, 422, "validation_error", "recipes"),
        ({"prices": []}, 422, "validation_error", "no price for"),
        ({"timeout_ms": 0}, 422, "validation_error", "timeout_ms"),
        ({"constraints": {"budget": -1}}, 422, "validation_error", "budget"),
    ],
)
def test_bad_plans(serve_server, change, status, code, text):
    response = post(serve_server, {**base_request(), **change})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and text in error["message"]


def test_too_many_recipes_is_413(serve_server):
    response = post(serve_server, week_request(501, seed=1))
    assert response.status_code == 413, response.text
    assert "at most 500" in response.json()["error"]["message"]


def test_solver_health(serve_server):
    health = httpx.get(f"{serve_server.url}/health", timeout=30).json()
    assert health["components"]["solver"]["status"] == "ready"
    assert health["components"]["solver"]["device"] == "cpu"
