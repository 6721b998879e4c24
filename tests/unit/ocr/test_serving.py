"""OcrService and health aggregation when OCR has no weights (no Ray cluster)."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from serve_app.errors import ApiError
from serve_app.ocr.jobs import PageResult
from serve_app.ocr.pages import OcrPage
from serve_app.ocr.serving import OcrService, PageAdmission
from serve_app.settings import Settings


class UnavailableClient:
    name = "ocr"
    timeout_s = 30.0

    async def call(self, method: str, arg, idempotent: bool = True):
        return PageResult(
            unavailable="docTR weights missing: /data/doctr/models/x.pt.",
            fix="serve-app weights download",
        )


class SlowOcrClient:
    """Stands in for the OCR deployment: ``at_once`` pages at a time, ``page_s`` each."""

    name = "ocr"

    def __init__(self, page_s: float, at_once: int, timeout_s: float):
        self.page_s = page_s
        self.at_once = at_once
        self.timeout_s = timeout_s
        self.slots = asyncio.Semaphore(at_once)
        self.read = 0

    async def call(self, method: str, job, idempotent: bool = True):
        async def work():
            async with self.slots:
                await asyncio.sleep(self.page_s)
                self.read += 1
            return PageResult(
                page=OcrPage(width=50, height=50, lines=[]),
                model={"detection": "d", "recognition": "r", "weights": "random"},
                batch_size=1,
                batch_leader=True,
                page_seconds=self.page_s,
                pages_at_once=self.at_once,
                replica="r1",
            )

        try:
            return await asyncio.wait_for(work(), self.timeout_s)
        except TimeoutError:
            raise ApiError(408, "timeout", "too slow") from None


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_ocr_without_weights_is_503_with_the_fix():
    service = OcrService(UnavailableClient(), Settings())  # type: ignore[arg-type]
    with pytest.raises(ApiError) as info:
        asyncio.run(service.run(png(), receipt=True))
    error = info.value
    assert (error.status, error.code) == (503, "ocr_unavailable")
    assert "serve-app weights download" in error.message
    assert "Retry-After" in error.headers


def run_clients(service: OcrService, clients: int, seconds: float) -> dict[int, int]:
    """``clients`` upload pages in a closed loop for ``seconds``, backing off for Retry-After
    on 503 as the Elixir client does; statuses counted."""
    statuses: dict[int, int] = {}

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds

        async def client():
            while loop.time() < stop:
                try:
                    await service.run(png(), receipt=False)
                    statuses[200] = statuses.get(200, 0) + 1
                except ApiError as exc:
                    statuses[exc.status] = statuses.get(exc.status, 0) + 1
                    if exc.status == 503:
                        await asyncio.sleep(float(exc.headers["Retry-After"]) / 10)

        await asyncio.gather(*(client() for _ in range(clients)))

    asyncio.run(main())
    return statuses


def test_pages_that_cannot_be_read_in_time_are_refused_before_any_work():
    """More pages than fit in the timeout: the rest are refused at once (503, not 408 after
    the timeout), so what is admitted finishes; goodput at c16 is that of c4."""
    page_s, timeout_s = 0.2, 1.0  # two pages at once: 8 pages fit in 0.8 s of the 1 s
    settings = Settings(retry_after_s=1)
    c4 = OcrService(SlowOcrClient(page_s, 2, timeout_s), settings)  # type: ignore[arg-type]
    c16 = OcrService(SlowOcrClient(page_s, 2, timeout_s), settings)  # type: ignore[arg-type]
    at_c4 = run_clients(c4, 4, seconds=3.0)
    at_c16 = run_clients(c16, 16, seconds=3.0)
    assert set(at_c4) == {200}
    assert at_c16.get(408, 0) <= 16  # only while nothing was measured yet (the first wave)
    assert at_c16.get(503, 0) > 0
    assert at_c16.get(200, 0) >= 0.9 * at_c4[200]
    assert c16.admission.pending == 0


def test_admission_estimate_and_retry_after():
    admission = PageAdmission(limit_s=10.0)
    for _ in range(30):  # nothing measured: everything is admitted
        admission.admit(1)
    assert admission.pending == 30 and admission.estimate_s() is None
    for _ in range(26):
        admission.done(None)  # failed pages teach nothing
    result = PageResult(page=OcrPage(1, 1, []), page_seconds=4.0, pages_at_once=2, replica="a")
    admission.done(result)  # 3 pending, 4 s a page, 2 at once
    assert admission.estimate_s() == 8.0  # the 4th page: in the second round
    admission.admit(1)  # 4 pending
    with pytest.raises(ApiError) as info:
        admission.admit(1)  # the 5th: third round, 12 s > 10 s
    assert (info.value.status, info.value.code) == (503, "overloaded")
    assert int(info.value.headers["Retry-After"]) == 6  # 12 - 10 + 4
    admission.done(
        PageResult(page=OcrPage(1, 1, []), page_seconds=4.0, pages_at_once=2, replica="b")
    )
    assert admission.slots() == 4  # a second replica doubles what is read at once
