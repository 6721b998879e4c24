"""Ray Serve deployment for OCR: pages from concurrent requests batched into one predictor call."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from ray import serve
from ray.serve.exceptions import RayServeException

from serve_app.batching import ThreadedBatches
from serve_app.ocr.jobs import DOWNLOAD_HINT, PageJob, PageResult
from serve_app.settings import get_settings

if TYPE_CHECKING:
    from serve_app.ocr.runtime import OcrRuntime


@serve.deployment(name="ocr")
class OcrDeployment:
    """Holds one :class:`OcrRuntime`, built in ``reconfigure`` from ``user_config``.

    ``user_config`` keys: ``det_arch``, ``reco_arch``, ``max_batch_size`` (pages per batch),
    ``batch_wait_timeout_s``, ``parallel_batches`` (batches predicted at once, each on its own
    thread), ``reco_batch_size`` (crops per recognition pass), ``torch_threads`` (0: every
    core). The running batches share the torch threads: a batch alone gets them all (the
    lowest latency for one page), two get half each. On a CPU two pages at once on one thread
    each beat one page on two: much of docTR's work per page (post-processing, cropping) is
    single-threaded, and the other batch fills the idle core meanwhile.
    Without weights (and without permission to run random ones) the replica stays up and
    reports ``unavailable`` with the reason, so the other models keep serving.
    """

    def __init__(self) -> None:
        self.runtime: OcrRuntime | None = None
        self.unavailable: str | None = "not configured yet"
        self._archs: tuple[str, str, int] | None = None
        self._batches = ThreadedBatches(self._read_pages, "ocr")
        self._pages_at_once = 1
        self._model: dict[str, str] = {}
        try:
            self._replica = serve.get_replica_context().replica_id.unique_id
        except RayServeException:  # built outside Serve (tests)
            self._replica = "local"

    def reconfigure(self, config: dict[str, Any]) -> None:
        # torch and docTR load here, in the replica: the app's build step imports this module
        from serve_app.ocr.runtime import (
            DEFAULT_DET_ARCH,
            DEFAULT_RECO_ARCH,
            OcrRuntime,
            WeightsError,
        )

        settings = get_settings()
        archs = (
            str(config.get("det_arch", DEFAULT_DET_ARCH)),
            str(config.get("reco_arch", DEFAULT_RECO_ARCH)),
            int(config.get("reco_batch_size", 256)),
        )
        if archs != self._archs:
            try:
                self.runtime = OcrRuntime(
                    det_arch=archs[0],
                    reco_arch=archs[1],
                    weights_dir=settings.ocr_weights_path(),
                    allow_random_weights=settings.ocr_allow_random_weights,
                    device=settings.ocr_device,
                    reco_batch_size=archs[2],
                )
                self.unavailable = None
                self.runtime.read([np.full((64, 64, 3), 255, dtype=np.uint8)])  # warm up
            except WeightsError as exc:
                if settings.ocr_require_weights:
                    raise
                self.runtime, self.unavailable = None, str(exc)
            self._archs = archs
        batch_size = int(config.get("max_batch_size", 4))
        parallel = int(config.get("parallel_batches", 1))
        self._batches.configure(
            max_batch_size=batch_size,
            wait_s=float(config.get("batch_wait_timeout_s", 0.02)),
            parallel=parallel,
            threads=int(config.get("torch_threads", 0)),
        )
        self._pages_at_once = batch_size * max(1, parallel)
        if self.runtime is not None:
            self._model = {
                "detection": self.runtime.det_arch,
                "recognition": self.runtime.reco_arch,
                "weights": self.runtime.weights,
            }

    def _read_pages(self, jobs: list[PageJob]) -> list[PageResult]:
        """On a batch thread: one predictor call for the pages whose requests still wait."""
        assert self.runtime is not None
        now = time.time()
        live = [job for job in jobs if job.deadline > now]
        started = time.perf_counter()
        pages = self.runtime.read([job.image for job in live]) if live else []
        seconds = time.perf_counter() - started
        read = iter(pages)
        results = []
        for job in jobs:
            if job.deadline <= now:
                results.append(PageResult(expired=True, replica=self._replica))
                continue
            results.append(
                PageResult(
                    page=next(read),
                    model=self._model,
                    batch_size=len(live),
                    batch_leader=not results or all(r.expired for r in results),
                    page_seconds=seconds,
                    pages_at_once=self._pages_at_once,
                    replica=self._replica,
                )
            )
        return results

    async def read(self, job: PageJob) -> PageResult:
        """OCR one page (joins the current batch); ``unavailable`` without a model."""
        if self.runtime is None:
            return PageResult(unavailable=self.unavailable, fix=DOWNLOAD_HINT)
        return await self._batches(job)

    def info(self) -> dict[str, Any]:
        """What ``/health`` reports for OCR."""
        if self.runtime is None:
            return {
                "status": "unavailable",
                "reason": self.unavailable,
                "fix": DOWNLOAD_HINT,
            }
        return {
            "status": "ready",
            "weights": self.runtime.weights,
            "device": self.runtime.device,
            "detection": self.runtime.det_arch,
            "recognition": self.runtime.reco_arch,
            "load_seconds": round(self.runtime.load_seconds, 3),
        }
