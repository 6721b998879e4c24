"""Fuzzing at depth: Schemathesis against a running server, every operation, plus stateful
sequences along the OpenAPI links (upsert -> search -> delete).

Run ``python -m benchmarks.fuzz [--cases 5000]``: starts ``serve-app run`` (local.yaml, random
OCR weights, a token) unless ``--url`` names a running server; prints the cases per operation
and status and every failure, and writes JSON to ``benchmarks/results/<timestamp>/fuzz.json``.
Checks on every response: ``not_a_server_error`` (no 5xx), ``status_code_conformance`` (the
status is documented for the operation) and ``response_schema_conformance`` (the body matches
the documented schema). The suite's own ``tests/e2e/test_schemathesis.py`` is the quick,
derandomised version of this (about 25 cases per operation); this one is seeded too
(``--seed``), so a failure found here can be replayed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from benchmarks.harness.loadgen import print_table
from benchmarks.harness.servers import ROOT, this_server

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
TOKEN = "fuzz-token-0123456789"
PLAN_TIMEOUT_MS = 300  # generated plans: keep each solve short


class Tally:
    """Cases per operation and status, and the failures with the case that caused them."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.failures: list[dict[str, Any]] = []
        self.replays_stopped = 0  # stateful runs Hypothesis ended early (see stateful())

    def record(self, phase: str, case: Any, response: Any) -> None:
        label = case.operation.label
        self.statuses[label][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # every failure is collected and reported at the end
            self.failures.append(
                {
                    "phase": phase,
                    "operation": label,
                    "status": response.status_code,
                    "failure": str(exc)[:1500],
                    "curl": case.as_curl_command(),
                }
            )

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())


def prepare(case: Any) -> None:
    if isinstance(case.body, dict) and "timeout_ms" in case.body:
        case.body["timeout_ms"] = PLAN_TIMEOUT_MS


def stateless(schema: Any, tally: Tally, per_operation: int, seed: int, call: dict) -> None:
    """``per_operation`` generated cases for each operation, one Hypothesis run each."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        before = tally.total

        @given(case=operation.as_strategy())
        @settings(
            max_examples=per_operation,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            prepare(case)
            tally.record("stateless", case, case.call(**call))

        hypothesis.seed(seed)(run)()
        print(f"  {operation.label}: {tally.total - before} cases", flush=True)


def stateful(schema: Any, tally: Tally, calls: int, steps: int, seed: int, call: dict) -> int:
    """About ``calls`` calls in sequences of up to ``steps`` along the OpenAPI links. A link
    draws its next call from the server's live answers, so Hypothesis, when it replays part of
    a sequence, can meet other data than before and stop that run ("inconsistent data
    generation"): such a run keeps what it recorded, and the next one starts with a new seed.
    Returns the calls made."""
    machine = schema.as_state_machine()
    before = tally.total

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return call

        def before_call(self, case: Any) -> None:
            prepare(case)

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            tally.record("stateful", case, response)

    for attempt in range(50):
        done = tally.total - before
        if done >= calls:
            break
        try:
            hypothesis.seed(seed + attempt)(Workflow)  # a new seed for each run
            Workflow.run(
                settings=settings(
                    max_examples=max(10, (calls - done) // steps),
                    stateful_step_count=steps,
                    phases=[Phase.generate],
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                    database=None,
                )
            )
        except FlakyStrategyDefinition:
            tally.replays_stopped += 1
    return tally.total - before


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=5000, help="generated cases in total")
    parser.add_argument(
        "--stateful-share", type=float, default=0.3, help="share of the cases in sequences"
    )
    parser.add_argument("--steps", type=int, default=6, help="calls per stateful sequence")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--url", help="fuzz this running server (give its --token)")
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--config", type=Path, default=ROOT / "deployments" / "local.yaml")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = {"SERVE_APP_API_TOKEN": args.token, "SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true"}
    server = this_server(args.url, args.config, env, out / "logs" / "serve-fuzz.log")
    tally = Tally()
    started = time.monotonic()
    try:
        server.wait_ready()
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        call = {
            "base_url": server.url,
            "headers": {"Authorization": f"Bearer {args.token}"},
            "timeout": 60,
        }
        operations = len(list(schema.get_all_operations()))
        in_sequences = int(args.cases * args.stateful_share)
        per_operation = max(1, (args.cases - in_sequences) // operations)
        print(f"stateless: {per_operation} cases for each of {operations} operations", flush=True)
        stateless(schema, tally, per_operation, args.seed, call)
        print(f"stateful: sequences of up to {args.steps} calls along the links", flush=True)
        added = stateful(schema, tally, in_sequences, args.steps, args.seed, call)
        print(
            f"  {added} calls in sequences ({tally.replays_stopped} runs ended early by "
            "Hypothesis's replay)",
            flush=True,
        )
        # Top up to the asked-for total with more stateless cases, a new seed each round
        # (operations without parameters give one case whatever is asked, so one round can
        # fall short).
        for extra in range(1, 6):
            short = args.cases - tally.total
            if short <= 0:
                break
            print(f"stateless again: {short} more cases", flush=True)
            stateless(schema, tally, max(1, short // operations + 1), args.seed + extra, call)
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    codes = sorted({code for counts in tally.statuses.values() for code in counts})
    rows = [
        [label, str(sum(counts.values())), *(str(counts.get(c, "")) for c in codes)]
        for label, counts in sorted(tally.statuses.items())
    ]
    print()
    print_table(rows, ["operation", "cases", *map(str, codes)])
    print(f"\n{tally.total} cases in {elapsed:.0f} s, {len(tally.failures)} failures")
    for failure in tally.failures[:20]:
        print(f"- [{failure['phase']}] {failure['operation']} -> {failure['status']}")
        print("  " + failure["failure"].replace("\n", "\n  ")[:800])
        print(f"  {failure['curl']}")
    report = {
        "cases": tally.total,
        "seconds": round(elapsed, 1),
        "seed": args.seed,
        "stateful_runs_ended_early": tally.replays_stopped,
        "statuses": {label: dict(c) for label, c in tally.statuses.items()},
        "failures": tally.failures,
    }
    (out / "fuzz.json").write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out / 'fuzz.json'}")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
