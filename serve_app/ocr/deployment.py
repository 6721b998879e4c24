"""Ray Serve deployment for OCR: pages from concurrent requests batched into one predictor call."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve

from serve_app.batching import ThreadedBatches
from serve_app.ocr.runtime import (
    DEFAULT_DET_ARCH,
    DEFAULT_RECO_ARCH,
    DOWNLOAD_HINT,
    OcrPage,
    OcrRuntime,
    WeightsError,
)
from serve_app.settings import get_settings


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

    def reconfigure(self, config: dict[str, Any]) -> None:
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
        self._batches.configure(
            max_batch_size=int(config.get("max_batch_size", 4)),
            wait_s=float(config.get("batch_wait_timeout_s", 0.02)),
            parallel=int(config.get("parallel_batches", 1)),
            threads=int(config.get("torch_threads", 0)),
        )

    def _read_pages(self, pages: list[np.ndarray]) -> list[tuple[OcrPage, int, bool]]:
        """On a batch thread: one predictor call for the batch."""
        assert self.runtime is not None
        results = self.runtime.read(pages)
        return [(result, len(pages), i == 0) for i, result in enumerate(results)]

    async def read(self, page: np.ndarray) -> dict[str, Any]:
        """OCR one page (joins the current batch); ``{"unavailable": reason}`` without a model."""
        if self.runtime is None:
            return {"unavailable": self.unavailable}
        result, batch_size, leader = await self._batches(page)
        return {
            "page": result,
            "batch_size": batch_size,
            "batch_leader": leader,
            "model": {
                "detection": self.runtime.det_arch,
                "recognition": self.runtime.reco_arch,
                "weights": self.runtime.weights,
            },
        }

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
