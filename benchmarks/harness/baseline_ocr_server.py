"""Baseline (b) for OCR: one uvicorn process that runs the predictor once per request.

This is the docTR reference API's approach (no batching across requests), with the same
engine (the OCR deployment's default), runtime and image intake as
this server. Run: ``python -m benchmarks.harness.baseline_ocr_server``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from benchmarks.harness.baseline_server import run_baseline
from serve_app.ocr.config import OcrConfig
from serve_app.ocr.images import decode_image
from serve_app.ocr.runtime import build_runtime
from serve_app.settings import get_settings


def create_app() -> FastAPI:
    runtime = build_runtime(OcrConfig(), get_settings())  # the deployment's defaults
    print(f"OCR engine: {runtime.engine}", flush=True)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/ocr")
    async def ocr(request: Request) -> dict:
        page = decode_image(await request.body(), 15 * 1024 * 1024, 50_000_000, 4096)
        result = runtime.read([page])[0]  # one page per call, on the event loop
        return {"text": "\n".join(line.text for line in result.lines), "lines": len(result.lines)}

    return app


def main() -> None:
    run_baseline(create_app, 8101)


if __name__ == "__main__":
    main()
