"""docTR OCR runtime (torch, no Ray, no FastAPI). Nothing is downloaded here: weights come
hash-checked from docTR's cache layout (``<dir>/models/<arch>-<sha256 prefix>.pt``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from serve_app.devices import resolve_device
from serve_app.logs import get_logger
from serve_app.ocr.config import DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH
from serve_app.ocr.jobs import DOWNLOAD_HINT
from serve_app.ocr.lines import group_lines
from serve_app.ocr.pages import OcrPage, OcrSegment
from serve_app.ocr.weights import WeightsError, WeightsSource, fetch, verify_hash

log = get_logger(__name__)


def build_model(kind: Literal["detection", "recognition"], arch: str) -> torch.nn.Module:
    from doctr.models import detection, recognition

    module = detection if kind == "detection" else recognition
    factory = getattr(module, arch, None)
    if not callable(factory):
        raise ValueError(f"unknown docTR {kind} architecture {arch!r}")
    # pretrained_backbone=False: otherwise docTR downloads ImageNet backbone weights.
    return factory(pretrained=False, pretrained_backbone=False)


def weights_file(weights_dir: Path, model: torch.nn.Module) -> Path:
    """Where docTR's cache keeps this model's weights inside ``weights_dir``."""
    url: str = model.cfg["url"]
    file_name = url.rpartition("/")[-1].split("&")[0]
    return weights_dir / "models" / file_name


class DoctrRuntime:
    """One docTR ``ocr_predictor`` built once from explicit model objects; its words are
    grouped into lines by :func:`serve_app.ocr.lines.group_lines`."""

    engine = "doctr"

    def __init__(
        self,
        det_arch: str = DEFAULT_DET_ARCH,
        reco_arch: str = DEFAULT_RECO_ARCH,
        weights_dir: Path | None = None,
        allow_random_weights: bool = False,
        device: str = "auto",
        reco_batch_size: int = 256,
    ) -> None:
        from doctr.models import ocr_predictor

        started = time.perf_counter()
        self.det_arch, self.reco_arch = det_arch, reco_arch
        det = build_model("detection", det_arch)
        reco = build_model("recognition", reco_arch)
        missing = []
        for model in (det, reco):
            path = weights_file(weights_dir, model) if weights_dir else None
            if path is not None and path.is_file():
                verify_hash(path)
                model.load_state_dict(torch.load(path, map_location="cpu"))
            else:
                missing.append(str(path) if path else f"{model.cfg['url']} (no weights dir)")
        if missing and not allow_random_weights:
            raise WeightsError(
                "docTR weights missing: " + ", ".join(missing) + f". Run `{DOWNLOAD_HINT}`."
            )
        self.weights: Literal["pretrained", "random"] = "random" if missing else "pretrained"
        self.device = resolve_device(device)
        self.predictor = ocr_predictor(
            det_arch=det,
            reco_arch=reco,
            pretrained=False,
            pretrained_backbone=False,
            assume_straight_pages=True,
            detect_orientation=False,
            straighten_pages=False,
            disable_page_orientation=True,
            disable_crop_orientation=True,
            det_bs=4,
            reco_bs=reco_batch_size,
        ).eval()
        self.predictor = self.predictor.to(self.device)
        if self.device == "cuda":
            self.predictor = self.predictor.half()
        self.load_seconds = time.perf_counter() - started
        log.info(
            "docTR %s + %s (%s weights) on %s in %.2fs",
            det_arch,
            reco_arch,
            self.weights,
            self.device,
            self.load_seconds,
        )

    @torch.inference_mode()
    def read(self, pages: list[np.ndarray]) -> list[OcrPage]:
        """OCR a batch of RGB uint8 pages (H, W, 3); one result per page, same order."""
        if not pages:
            return []
        document = self.predictor(pages)
        return [self._page(page, image) for page, image in zip(document.pages, pages, strict=True)]

    @staticmethod
    def _page(page: Any, image: np.ndarray) -> OcrPage:
        height, width = image.shape[:2]
        segments = []
        words = (w for block in page.blocks for line in block.lines for w in line.words if w.value)
        for word in words:
            (x0, y0), (x1, y1) = word.geometry  # relative, straight pages
            x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
            segments.append(
                OcrSegment(
                    text=word.value,
                    confidence=float(word.confidence),
                    corners=((x0, y0), (x1, y0), (x1, y1), (x0, y1)),
                )
            )
        return OcrPage(
            width=int(width), height=int(height), lines=group_lines(segments, width, height)
        )


def sources(
    weights_dir: Path, det_arch: str, reco_arch: str, mirror: str | None = None
) -> list[WeightsSource]:
    """The files the architectures need; ``mirror`` replaces docTR's host (same file names)."""
    found = []
    for kind, arch in (("detection", det_arch), ("recognition", reco_arch)):
        model = build_model(kind, arch)  # type: ignore[arg-type]
        path = weights_file(weights_dir, model)
        url = f"{mirror.rstrip('/')}/{path.name}" if mirror else model.cfg["url"]
        found.append(WeightsSource(arch=arch, url=url, path=path))
    return found


def download(
    weights_dir: Path, pairs: Iterable[tuple[str, str]], mirror: str | None = None
) -> list[Path]:
    """Fetch exactly the weights of the given (det_arch, reco_arch) pairs into ``weights_dir``."""
    saved: list[Path] = []
    for det_arch, reco_arch in pairs:
        for source in sources(weights_dir, det_arch, reco_arch, mirror):
            if source.path not in saved:
                saved.append(fetch(source))
    return saved
