"""The benchmarks' load generator counts what a closed loop really got through (no Ray)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from benchmarks.harness.loadgen import closed_loop


async def slow_server(delay_s: float) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay_s)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/"


def test_requests_longer_than_the_window_are_counted_by_when_they_end():
    """0.6 s per request, 4 workers answered together, a 1 s window: 4 / 0.6 = 6.7 req/s.
    Counting the requests that fit in the window would see one per worker: 4 req/s."""

    async def main():
        runner, url = await slow_server(0.6)
        try:
            return await closed_loop(url, lambda i: {"i": i}, 2, 4, 1.0, warmup_s=0.1)
        finally:
            await runner.cleanup()

    result = asyncio.run(main())
    assert result.errors == 0 and result.status_counts == {"200": result.requests}
    assert 6.0 <= result.requests_per_s <= 7.0, result
    assert result.items_per_s == 2 * result.requests_per_s
    assert 550 <= result.p50_ms <= 900


def test_warm_up_waits_for_every_worker_to_have_an_answer():
    """Requests slower than warm-up plus window: the window opens after every worker's first
    answer, and the gaps that span its end still measure the steady state (3 / 0.8 s)."""

    async def main():
        runner, url = await slow_server(0.8)
        try:
            return await closed_loop(url, lambda i: {}, 1, 3, 0.5, warmup_s=0.1)
        finally:
            await runner.cleanup()

    result = asyncio.run(main())
    assert result.requests == 3 and result.errors == 0
    assert 3.3 <= result.requests_per_s <= 3.9, result
    assert 750 <= result.p50_ms <= 1100


def test_plan_benchmark_seeds():
    from benchmarks.plans import seeds_of

    assert seeds_of(None, 200) == [200]  # each size's own week, as in docs/benchmarks.md
    assert seeds_of("0-3", 200) == [0, 1, 2, 3]
    assert seeds_of("1,5,7-8", 50) == [1, 5, 7, 8]
