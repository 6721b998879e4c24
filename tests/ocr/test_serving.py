"""OcrService and health aggregation when OCR has no weights (no Ray cluster)."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from serve_app.errors import ApiError
from serve_app.ingress import HealthReporter
from serve_app.ocr.serving import OcrService
from serve_app.settings import Settings


class UnavailableClient:
    name = "ocr"

    async def call(self, method: str, arg, idempotent: bool = True):
        return {"unavailable": "docTR weights missing: /data/doctr/models/x.pt."}


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


def test_unavailable_component_degrades_but_stays_ready():
    reporter = HealthReporter("grocery", {})

    async def report(components):
        async def fake_deployments():
            return {}

        reporter.deployments = fake_deployments  # type: ignore[method-assign]

        async def fake_component(client, deployment):
            return components[client]

        reporter._component = fake_component  # type: ignore[method-assign]
        reporter.clients = {name: name for name in components}  # type: ignore[assignment]
        return await reporter.report()

    code, body = asyncio.run(
        report({"embeddings": {"status": "ready"}, "ocr": {"status": "unavailable"}})
    )
    assert (code, body["status"]) == (200, "degraded")
    code, body = asyncio.run(
        report({"embeddings": {"status": "scaled_to_zero"}, "ocr": {"status": "ready"}})
    )
    assert (code, body["status"]) == (200, "ok")
    code, body = asyncio.run(
        report({"embeddings": {"status": "starting"}, "ocr": {"status": "ready"}})
    )
    assert (code, body["status"]) == (503, "starting")
