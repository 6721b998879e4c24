"""The autoscaler against the real server: the metrics it reads are the ones the server
exports (its decision rule and control loop: tests/unit/fly/test_autoscale.py)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from serve_app.fly.autoscale import MachineLoad, parse_metrics

pytestmark = pytest.mark.e2e


def test_the_real_server_exports_what_the_autoscaler_reads(serve_server):
    """Names agree: a solve in flight shows up as load on the real /metrics."""
    from benchmarks.data.plan_data import week_request  # a real plan that runs to its timeout

    def solve() -> None:
        body = week_request(200, seed=5, timeout_ms=3000)
        url = f"{serve_server.url}/v1/plans"
        httpx.post(url, json=body, headers=serve_server.headers, timeout=60)

    worker = threading.Thread(target=solve)
    worker.start()
    seen = MachineLoad(0, 0, 0)
    deadline = time.monotonic() + 10
    while worker.is_alive() and time.monotonic() < deadline:
        text = httpx.get(f"{serve_server.url}/metrics", timeout=10).text
        load = parse_metrics(text)
        if load.inflight >= 1:
            seen = load
            break
        time.sleep(0.05)
    worker.join(60)
    assert seen.inflight >= 1 and seen.model_inflight >= 1, "the solve never showed as load"
    idle = parse_metrics(httpx.get(f"{serve_server.url}/metrics", timeout=10).text)
    assert idle.inflight == 0  # scrapes and health checks are not load
