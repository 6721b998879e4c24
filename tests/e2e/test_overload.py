"""Overload, in one run: bounded load (a closed loop of 4 x 32 texts) is never shed, and a
burst at 5x its measured rate is answered fast, 200 or 503 with Retry-After in the JSON error
shape, never a 500 or a hang; the server is normal right after."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest

pytestmark = pytest.mark.e2e

WORDS = [
    "oat",
    "milk",
    "cheddar",
    "sourdough",
    "chickpeas",
    "basmati",
    "spinach",
    "yoghurt",
    "salmon",
    "olive",
    "oil",
]


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=12)) for _ in range(n)]


async def capacity(
    url: str, headers: dict, seconds: float = 8.0, concurrency: int = 4
) -> tuple[float, float]:
    """Requests per second the server answers 200 in a closed loop of ``concurrency`` clients
    (bounded load, what an importer does), and their mean latency: none of them may be shed,
    on a slow day either."""
    statuses: list[int] = []
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=60) as client:

        async def worker(w: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                body = {"input": texts(32, seed=w * 10_000 + i)}
                sent = time.monotonic()
                r = await client.post(f"{url}/v1/embeddings", json=body, headers=headers)
                latencies.append(time.monotonic() - sent)
                statuses.append(r.status_code)
                i += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - started
    refused = len(statuses) - statuses.count(200)
    assert refused == 0, f"{refused} of {len(statuses)} closed-loop requests were not 200"
    return statuses.count(200) / elapsed, sum(latencies) / len(latencies)


async def burst(url: str, headers: dict, rate: float, seconds: float) -> list[tuple]:
    """Open loop: ``rate`` requests per second for ``seconds``, whatever the answers.
    Returns (status, latency_s, retry_after, body) per request."""
    results: list[tuple] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int) -> None:
            started = time.monotonic()
            try:
                r = await client.post(
                    f"{url}/v1/embeddings", json={"input": texts(32, seed=i)}, headers=headers
                )
                status, retry, body = r.status_code, r.headers.get("retry-after"), r.text
            except httpx.HTTPError as exc:
                status, retry, body = 0, None, repr(exc)
            results.append((status, time.monotonic() - started, retry, body))

        tasks = []
        start = time.monotonic()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return results


def test_burst_at_five_times_capacity_is_shed_fast_and_cleanly(serve_server):
    url, headers = serve_server.url, serve_server.headers
    measured, bounded_latency = asyncio.run(capacity(url, headers))
    rate = 5 * measured
    results = asyncio.run(burst(url, headers, rate, seconds=30))
    statuses = [r[0] for r in results]
    latencies = sorted(r[1] for r in results)
    ok = statuses.count(200)
    shed = statuses.count(503) + statuses.count(429)
    print(
        f"\ncapacity {measured:.1f} req/s (32 texts each); burst {rate:.1f} req/s for 30 s: "
        f"{len(results)} requests, {ok} answered 200, {shed} shed (503/429), "
        f"latency p50 {latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s "
        f"(closed loop: {bounded_latency:.2f} s)"
    )
    assert set(statuses) <= {200, 503, 429}, sorted(set(statuses))  # no 500, no dropped conns
    assert shed > 0, "5x capacity was all served: the burst did not overload"
    assert ok >= 0.5 * measured * 30, "the server stopped doing useful work under overload"
    # Shed fast: an admitted request waits at most a budget or two of queued calls, so 99% of
    # answers stay within a few closed-loop latencies of this run (a machine's speed moves
    # 3-5x between days), and the slowest within twice that (one of ~900 requests: a pause
    # of the load generator sharing the two cores shows there; 2.69 s against 2.62 s failed
    # CI once). A queue without shedding grows at 5x for 30 s: its requests would wait
    # about 24 s, past both bounds.
    limit = max(2.0, 4 * bounded_latency)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    assert p99 <= limit, (
        f"99% of requests within {p99:.2f} s (limit {limit:.2f} s: 4x the closed loop's "
        f"{bounded_latency:.2f} s)"
    )
    assert latencies[-1] <= 2 * limit, (
        f"slowest request took {latencies[-1]:.2f} s (limit {2 * limit:.2f} s: 8x the closed "
        f"loop's {bounded_latency:.2f} s)"
    )
    for status, _, retry_after, body in results:
        if status in (503, 429):
            assert retry_after and int(retry_after) >= 1
            assert '"error"' in body and '"overloaded"' in body and '"request_id"' in body
            break
    # right after: normal service
    time.sleep(1.0)
    started = time.monotonic()
    r = httpx.post(f"{url}/v1/embeddings", json={"input": "oat milk"}, headers=headers, timeout=10)
    assert r.status_code == 200 and time.monotonic() - started < 1.0
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'serve_app_shed_total{model="embeddings"}' in metrics
    check_json_logs()


def check_json_logs() -> None:
    """The ingress's log lines are JSON (encoding: JSON) and the shedding line names the
    request it happened to."""
    import json
    from pathlib import Path

    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    lines = [
        line
        for path in logs.glob("replica_grocery_ingress_*.log")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    records = [json.loads(line) for line in lines]  # every line parses
    shed = [r for r in records if "shedding load" in r.get("message", "")]
    assert shed, "no shedding line in the ingress log"
    assert all(r.get("request_id") for r in shed), shed[:2]
    assert all(r.get("deployment", "").endswith("ingress") for r in shed)
    # every route that embeds sheds (earlier tests may have shed upserts too)
    assert all(r.get("route") in ("/v1/embeddings", "/v1/documents", "/v1/search") for r in shed)
    assert any(r.get("route") == "/v1/embeddings" for r in shed)
