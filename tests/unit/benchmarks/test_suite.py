"""The suite's run order: what uses the quick run's shared server comes first (it is stopped
before the rest, which start what they measure), and every step is a benchmark module."""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks.harness.suite import SHARED, plan


@pytest.mark.parametrize("quick", [True, False])
def test_every_step_is_a_benchmark_module(quick):
    for name, _ in plan(quick):
        assert importlib.util.find_spec(f"benchmarks.{name}") is not None, name


def test_quick_run_uses_the_shared_server_first_and_only_where_it_passes_the_url():
    steps = plan(True, url="http://shared", data="/data")
    shared = [name in SHARED for name, _ in steps]
    assert shared == sorted(shared, reverse=True)  # no shared step after the server stopped
    for name, args in steps:
        assert ("http://shared" in args) == (name in SHARED), name
    assert {"receipts", "wake"} <= {name for name, _ in steps}
