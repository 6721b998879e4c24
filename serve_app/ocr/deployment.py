"""Ray Serve deployment for OCR: pages from concurrent requests batched into one engine call."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve.exceptions import RayServeException

from serve_app.batching import ThreadedBatches, set_torch_threads
from serve_app.logs import get_logger
from serve_app.ocr.config import OcrConfig
from serve_app.ocr.jobs import DOWNLOAD_HINT, PageJob, PageResult
from serve_app.ocr.runtime import build_runtime
from serve_app.ocr.weights import WeightsError
from serve_app.settings import get_settings

if TYPE_CHECKING:
    from serve_app.ocr.pages import OcrRuntime

log = get_logger(__name__)


@serve.deployment(name="ocr")
class OcrDeployment:
    """Holds one OCR runtime (docTR or rapidocr), built by ``reconfigure`` from
    :class:`~serve_app.ocr.config.OcrConfig`; pages are read in batches on threads of their own
    (:mod:`serve_app.batching`; on a CPU one thread per page beats two on one, as cropping and
    post-processing are single-threaded). docTR without weights leaves the replica up,
    reporting ``unavailable`` with the reason, so the other models keep serving."""

    def __init__(self) -> None:
        self.runtime: OcrRuntime | None = None
        self.unavailable: str | None = "not configured yet"
        self._built: tuple[Any, ...] | None = None
        self._batches: ThreadedBatches | None = None
        self._pages_at_once = 1
        self._model: dict[str, str] = {}
        try:
            self._replica = serve.get_replica_context().replica_id.unique_id
        except RayServeException:  # built outside Serve (tests)
            self._replica = "local"

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = OcrConfig.model_validate(user_config or {})  # unknown keys fail the deploy
        settings = get_settings()
        engine = config.engine
        wanted = (
            engine,
            config.det_arch,
            config.reco_arch,
            config.reco_batch_size,
            config.parallel_batches if engine == "rapidocr" else None,
            config.torch_threads if engine == "rapidocr" else None,
        )
        if wanted != self._built:
            try:
                runtime = build_runtime(config, settings)
                self.runtime, self.unavailable = runtime, None
                self._model = {
                    "engine": runtime.engine,
                    "detection": runtime.det_arch,
                    "recognition": runtime.reco_arch,
                    "weights": runtime.weights,
                }
                log.info("OCR engine %s (%s)", engine, runtime.weights)
            except WeightsError as exc:
                if settings.ocr_require_weights:
                    raise
                self.runtime, self.unavailable = None, str(exc)
            self._built = wanted
        # torch's threads per batch for docTR; rapidocr's are fixed when it is built
        set_threads = set_torch_threads if engine == "doctr" else None
        if self._batches is None or self._batches.set_threads is not set_threads:
            self._batches = ThreadedBatches(self._read_pages, "ocr", set_threads=set_threads)
        self._batches.configure(
            max_batch_size=config.max_batch_size,
            wait_s=config.batch_wait_timeout_s,
            parallel=config.parallel_batches,
            threads=config.torch_threads,
        )
        self._pages_at_once = config.max_batch_size * config.parallel_batches

    def _read_pages(self, jobs: list[PageJob]) -> list[PageResult]:
        """On a batch thread: one engine call for the pages whose requests still wait."""
        runtime = self.runtime
        assert runtime is not None
        now = time.time()
        live = [job for job in jobs if job.deadline > now]
        started = time.perf_counter()
        pages = runtime.read([job.image for job in live]) if live else []
        seconds = time.perf_counter() - started  # on this thread: a batch beside it counts in
        read = iter(pages)
        results = []
        for job in jobs:
            if job.deadline <= now:
                results.append(PageResult(expired=True, replica=self._replica))
            else:
                results.append(
                    PageResult(
                        page=next(read),
                        model=self._model,
                        batch_size=len(live),
                        batch_leader=job is live[0],
                        page_seconds=seconds,
                        pages_at_once=self._pages_at_once,
                        replica=self._replica,
                    )
                )
        return results

    async def read(self, job: PageJob) -> PageResult:
        """OCR one page (joins the current batch); ``unavailable`` without a model."""
        if self.runtime is None or self._batches is None:
            return PageResult(unavailable=self.unavailable, fix=DOWNLOAD_HINT)
        return await self._batches(job)

    def info(self) -> dict[str, Any]:
        """What ``/health`` reports for OCR."""
        if self.runtime is None:
            return {"status": "unavailable", "reason": self.unavailable, "fix": DOWNLOAD_HINT}
        return {
            "status": "ready",
            **self._model,
            "device": self.runtime.device,
            "replica": self._replica,
            "load_seconds": round(self.runtime.load_seconds, 3),
        }
