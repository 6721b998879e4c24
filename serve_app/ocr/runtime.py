"""Which OCR engine reads the pages, and building it (no Ray; each engine's model library is
imported only when that engine is built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve_app.devices import cpu_threads
from serve_app.ocr.config import OcrConfig

if TYPE_CHECKING:
    from serve_app.ocr.pages import OcrRuntime
    from serve_app.settings import Settings


def build_runtime(config: OcrConfig, settings: Settings) -> OcrRuntime:
    """``config.engine``'s runtime, loaded and ready to read. docTR without weights raises
    ``WeightsError`` unless random weights are allowed (SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS)."""
    if config.engine == "doctr":
        from serve_app.ocr.doctr_runtime import DoctrRuntime

        return DoctrRuntime(
            det_arch=config.det_arch,
            reco_arch=config.reco_arch,
            weights_dir=settings.ocr_weights_path(),
            allow_random_weights=settings.ocr_allow_random_weights,
            device=settings.ocr_device,
            reco_batch_size=config.reco_batch_size,
        )
    from serve_app.ocr.rapidocr_runtime import RapidOcrRuntime

    return RapidOcrRuntime(
        threads=max(1, cpu_threads(config.torch_threads) // config.parallel_batches),
        device=settings.ocr_device,  # "auto" is the CPU there
    )
