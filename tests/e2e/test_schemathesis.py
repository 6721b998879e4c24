"""Schemathesis against the live server's /openapi.json, every route, with the token: no 5xx,
and every documented response matches its schema. Prints how many cases ran.

Schemathesis drives Hypothesis directly here (one Hypothesis run per operation inside one
test), not through its pytest plugin."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

pytestmark = pytest.mark.e2e

EXAMPLES = 25  # per operation


def test_every_route_honours_its_schema(serve_server):
    schema = schemathesis.openapi.from_url(f"{serve_server.url}/openapi.json")
    cases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]

    def fuzz(operation) -> None:
        label = operation.label

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same cases every run
            database=None,
        )
        def run(case) -> None:
            if isinstance(case.body, dict) and "timeout_ms" in case.body:
                case.body["timeout_ms"] = 300  # plans: keep generated solves short
            response = case.call(
                base_url=serve_server.url, headers=serve_server.headers, timeout=60
            )
            cases[label] += 1
            statuses[response.status_code] += 1
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )
            except Exception as exc:  # collect, report all at the end
                failures.append(f"{label}: {str(exc)[:400]}")

        run()

    for operation in operations:
        fuzz(operation)
    total = sum(cases.values())
    print(f"\nschemathesis: {total} cases over {len(cases)} operations; statuses {dict(statuses)}")
    for label, n in sorted(cases.items()):
        print(f"  {label}: {n}")
    assert not failures, "\n".join(failures[:10])
    assert len(cases) == len(operations) >= 10 and total >= 100
