"""rapidocr runtime (no Ray, no FastAPI): PP-OCRv6 ONNX models from the ``rapidocr`` package,
hash-checked and passed as explicit paths, so its downloader never runs (docs/models.md)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from serve_app.logs import get_logger
from serve_app.ocr.lines import group_lines
from serve_app.ocr.pages import OcrPage, OcrSegment

log = get_logger(__name__)

DETECTION = "PP-OCRv6_det_small"
RECOGNITION = "PP-OCRv6_rec_small"


class PackagedWeightsError(RuntimeError):
    """A model file of the rapidocr package is missing or not the one it records."""


def package_dir() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent


def recorded_hashes() -> dict[str, str]:
    """File name -> SHA-256, from the package's own model list."""
    listed = yaml.safe_load((package_dir() / "default_models.yaml").read_text())
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            url, digest = node.get("model_dir"), node.get("SHA256")
            if isinstance(url, str) and isinstance(digest, str):
                found.setdefault(url.rsplit("/", 1)[-1], digest)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(listed)
    return found


def packaged_model(name: str) -> Path:
    """The package's ``<name>.onnx``, hash-checked."""
    path = package_dir() / "models" / f"{name}.onnx"
    if not path.is_file():
        raise PackagedWeightsError(f"{path} is missing: reinstall rapidocr")
    expected = recorded_hashes().get(path.name)
    if expected is None:
        raise PackagedWeightsError(f"rapidocr records no hash for {path.name}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise PackagedWeightsError(f"{path} does not match its recorded hash {expected[:12]}")
    return path


class RapidOcrRuntime:
    """One ``RapidOCR`` pipeline, built once; ``read`` is safe from several threads (the
    pipeline's options are fixed here, and onnxruntime sessions run concurrently)."""

    engine = "rapidocr"
    weights: Literal["pretrained", "random"] = "pretrained"

    def __init__(self, threads: int = 1, device: str = "cpu") -> None:
        from rapidocr import EngineType, ModelType, OCRVersion, RapidOCR

        started = time.perf_counter()
        self.det_arch, self.reco_arch = DETECTION, RECOGNITION
        self.device = "cpu" if device == "auto" else device
        if self.device != "cpu":  # onnxruntime-gpu is not installed: CPU only here
            raise ValueError(f"the rapidocr engine runs on the CPU here, not {device!r}")
        threads = max(1, min(threads, os.cpu_count() or 1))
        params = {
            "Global.use_cls": False,  # no text-direction classifier: receipts are upright
            "Global.log_level": "warning",
            "Global.text_score": 0.5,  # segments read with less confidence are dropped
            "Det.engine_type": EngineType.ONNXRUNTIME,
            "Rec.engine_type": EngineType.ONNXRUNTIME,
            "Det.ocr_version": OCRVersion.PPOCRV6,
            "Rec.ocr_version": OCRVersion.PPOCRV6,
            "Det.model_type": ModelType.SMALL,
            "Rec.model_type": ModelType.SMALL,
            # explicit paths: the package's own files, never rapidocr's downloader
            "Det.model_path": str(packaged_model(DETECTION)),
            "Rec.model_path": str(packaged_model(RECOGNITION)),
            "Det.limit_type": "max",
            "Det.limit_side_len": 960,  # longer side of a page for detection
            "Rec.rec_batch_num": 6,  # text crops per recognition pass
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        self.pipeline = RapidOCR(params=params)
        # sessions load lazily, recognition once text is found: read a line before ready
        self.pipeline(_warm_up_page())
        self.load_seconds = time.perf_counter() - started
        log.info(
            "rapidocr %s + %s (packaged weights, %d threads) in %.2fs",
            DETECTION,
            RECOGNITION,
            threads,
            self.load_seconds,
        )

    def read(self, pages: list[np.ndarray]) -> list[OcrPage]:
        """OCR RGB uint8 pages (H, W, 3); one result per page, same order."""
        return [self._page(page) for page in pages]

    def _page(self, page: np.ndarray) -> OcrPage:
        height, width = page.shape[:2]
        bgr = np.ascontiguousarray(page[:, :, ::-1])  # rapidocr takes arrays as BGR (OpenCV)
        result = self.pipeline(bgr)
        segments = []
        if result.boxes is not None and result.txts is not None:
            for corners, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
                points = tuple((float(x), float(y)) for x, y in corners)
                segments.append(OcrSegment(text=str(text), confidence=float(score), corners=points))
        return OcrPage(
            width=int(width), height=int(height), lines=group_lines(segments, width, height)
        )


def _warm_up_page() -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (320, 64), "white")
    ImageDraw.Draw(image).text(
        (10, 12), "WARM UP 1.00", fill="black", font=ImageFont.load_default(size=32)
    )
    return np.asarray(image)[:, :, ::-1].copy()
