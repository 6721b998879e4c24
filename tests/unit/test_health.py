"""/health asks each model replica for its info sparingly (no Ray cluster: a counting client).

Every call counts as an ongoing request for Serve's autoscaler; polls while a busy machine
started up once scaled the solver to a second replica with no traffic. The real app's /health
is tested over HTTP in tests/e2e/embeddings/test_routes.py and tests/e2e/solver/test_routes.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from serve_app.http_app import health_answer
from serve_app.ingress import HealthReporter


class CountingInfo:
    """Stands in for ``handle.info``: counts calls, answers after ``delay_s`` or fails."""

    def __init__(self, delay_s: float = 0.05):
        self.calls = 0
        self.delay_s = delay_s
        self.fail: Exception | None = None

    def remote(self):
        self.calls += 1
        return self._answer(self.calls)

    async def _answer(self, n: int) -> dict:
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return {"status": "ready", "device": "cpu", "call": n}


def reporter_with(info: CountingInfo, running: list[int]) -> HealthReporter:
    client = SimpleNamespace(name="solver", handle=SimpleNamespace(info=info))
    reporter = HealthReporter("grocery", {"solver": client})  # type: ignore[dict-item]

    async def deployments():
        states = {"RUNNING": running[0]}
        return {"solver": SimpleNamespace(replica_states=states, status="HEALTHY", message="")}

    reporter.deployments = deployments  # type: ignore[method-assign]
    return reporter


async def report(reporter: HealthReporter) -> tuple[int, dict]:
    """/health's answer as the ingress gives it."""
    return health_answer(await reporter.components())


def test_concurrent_polls_share_one_info_call_and_reuse_it():
    info, running = CountingInfo(), [1]
    reporter = reporter_with(info, running)

    async def scenario():
        first = await asyncio.gather(*(report(reporter) for _ in range(20)))
        again = await report(reporter)
        return first, again

    first, again = asyncio.run(scenario())
    assert info.calls == 1
    for code, body in [*first, again]:
        assert code == 200
        assert body["components"]["solver"] == {
            "status": "ready",
            "device": "cpu",
            "call": 1,
            "replicas": 1,
        }


def test_info_is_asked_again_when_stale_or_replicas_change(monkeypatch):
    info, running = CountingInfo(delay_s=0), [1]
    reporter = reporter_with(info, running)

    async def solver():
        return (await report(reporter))[1]["components"]["solver"]

    async def scenario():
        assert (await solver())["call"] == 1
        running[0] = 2  # a replica was added: asked again, then kept
        assert [(await solver())["call"] for _ in range(3)] == [2, 2, 2]
        assert (await solver())["replicas"] == 2
        assert info.calls == 2
        monkeypatch.setattr(HealthReporter, "INFO_TTL_S", 0.0)  # stale: asked again
        assert (await solver())["call"] == 3
        running[0] = 0  # scaled to zero: nothing asked, cache dropped
        assert await solver() == {"status": "scaled_to_zero", "replicas": 0}
        assert info.calls == 3

    asyncio.run(scenario())


def test_a_failed_info_call_is_not_kept():
    info, running = CountingInfo(delay_s=0), [1]
    info.fail = TimeoutError("slow replica")
    reporter = reporter_with(info, running)

    async def scenario():
        code, body = await report(reporter)
        assert code == 503
        assert body["components"]["solver"]["status"] == "starting"
        assert "slow replica" in body["components"]["solver"]["reason"]
        info.fail = None
        code, body = await report(reporter)
        assert code == 200 and body["components"]["solver"]["call"] == 2

    asyncio.run(scenario())


def test_a_poll_that_gives_up_does_not_cancel_the_shared_call():
    info, running = CountingInfo(delay_s=0.2), [1]
    reporter = reporter_with(info, running)

    async def scenario():
        impatient = asyncio.ensure_future(report(reporter))
        await asyncio.sleep(0.05)
        patient = asyncio.ensure_future(report(reporter))
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        code, body = await patient
        assert code == 200 and body["components"]["solver"]["call"] == 1
        assert info.calls == 1

    asyncio.run(scenario())


def test_health_answer_from_the_components_states():
    """One place decides /health's status (the ingress and the bridge both use it)."""
    code, body = health_answer(
        {"embeddings": {"status": "ready"}, "ocr": {"status": "unavailable"}}
    )
    assert (code, body["status"]) == (200, "degraded")
    code, body = health_answer(
        {"embeddings": {"status": "scaled_to_zero"}, "ocr": {"status": "ready"}}
    )
    assert (code, body["status"]) == (200, "ok")
    code, body = health_answer({"embeddings": {"status": "starting"}, "ocr": {"status": "ready"}})
    assert (code, body["status"]) == (503, "starting")
    assert body["components"]["embeddings"] == {"status": "starting"} and body["version"]
