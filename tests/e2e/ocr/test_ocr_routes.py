"""POST /v1/ocr through the real Serve app: rapidocr with its packaged weights (the CPU configs
name it), read for real; and the engine
switched to docTR (random weights, as allowed in tests) and back through ``reconfigure``."""

from __future__ import annotations

import concurrent.futures
import io

import httpx
import pytest
from PIL import Image

from tests.helpers.ocr import render_receipt
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


RAPIDOCR = {
    "engine": "rapidocr",
    "detection": "PP-OCRv6_det_small",
    "recognition": "PP-OCRv6_rec_small",
    "weights": "pretrained",
}


def check_document(body: dict, width: int, height: int) -> None:
    assert body["model"] == RAPIDOCR
    assert len(body["pages"]) == 1
    page = body["pages"][0]
    assert (page["width"], page["height"]) == (width, height)
    for line in page["lines"]:
        x0, y0, x1, y1 = line["box"]
        assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1
    assert body["text"] == "\n".join(line["text"] for line in page["lines"])
    assert isinstance(body["receipt"]["consistent"], bool)


def test_raw_png_body_is_read_into_the_receipt(serve_server):
    image = render_receipt()
    response = httpx.post(
        f"{serve_server.url}/v1/ocr",
        content=png_bytes(image),
        headers={**serve_server.headers, "Content-Type": "image/png"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    check_document(body, image.shape[1], image.shape[0])
    receipt = body["receipt"]
    # RECEIPT_LINES: milk 3.49 and bananas 3 @ 0.29 = 0.87, tax 0.20, total 4.56
    assert [(i["total"], i["quantity"]) for i in receipt["items"]] == [(3.49, 1.0), (0.87, 3.0)]
    assert (receipt["subtotal"], receipt["tax"], receipt["total"]) == (4.36, 0.2, 4.56)
    assert receipt["merchant"] == "FRESH MART" and receipt["consistent"] is True


def test_pdf_first_page(serve_server):
    image = render_receipt()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PDF", resolution=200)  # rendered back at 200 dpi
    response = httpx.post(
        f"{serve_server.url}/v1/ocr",
        content=buffer.getvalue(),
        headers={**serve_server.headers, "Content-Type": "application/pdf"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    page = response.json()["pages"][0]
    assert abs(page["width"] - image.shape[1]) <= 1 and abs(page["height"] - image.shape[0]) <= 1


def test_multipart_upload_and_receipt_off(serve_server):
    image = render_receipt(width=700)
    response = httpx.post(
        f"{serve_server.url}/v1/ocr?receipt=false",
        files={"file": ("receipt.png", png_bytes(image), "image/png")},
        headers=serve_server.headers,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["receipt"] is None
    assert body["pages"][0]["width"] == 700


def test_concurrent_pages_are_all_answered(serve_server):
    data = png_bytes(render_receipt())

    def send(_: int) -> int:
        return httpx.post(
            f"{serve_server.url}/v1/ocr",
            content=data,
            headers={**serve_server.headers, "Content-Type": "image/png"},
            timeout=180,
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(send, range(6))) == [200] * 6


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"not an image", "image/png", 415, "unsupported_media_type"),
        (b"", "image/jpeg", 400, "invalid_image"),
        (b"GIF89a....", "image/gif", 415, "unsupported_media_type"),
        (b'{"image": "x"}', "application/json", 415, "unsupported_media_type"),
        (b"%PDF-1.7 broken", "application/pdf", 400, "invalid_image"),
    ],
)
def test_bad_uploads(serve_server, content, content_type, status, code):
    response = httpx.post(
        f"{serve_server.url}/v1/ocr",
        content=content,
        headers={**serve_server.headers, "Content-Type": content_type},
        timeout=60,
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_multipart_without_file_field(serve_server):
    response = httpx.post(
        f"{serve_server.url}/v1/ocr",
        files={"image": ("r.png", b"x", "image/png")},
        headers=serve_server.headers,
        timeout=60,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_truncated_and_oversized_images(serve_server):
    data = png_bytes(render_receipt())
    truncated = httpx.post(
        f"{serve_server.url}/v1/ocr",
        content=data[: len(data) // 2],
        headers={**serve_server.headers, "Content-Type": "image/png"},
        timeout=60,
    )
    assert (truncated.status_code, truncated.json()["error"]["code"]) == (400, "invalid_image")
    huge = httpx.post(
        f"{serve_server.url}/v1/ocr",
        content=b"\x89PNG" + b"0" * (15 * 1024 * 1024 + 10),
        headers={**serve_server.headers, "Content-Type": "image/png"},
        timeout=60,
    )
    assert huge.status_code == 413


def ocr_health(server) -> dict:
    return httpx.get(f"{server.url}/health", timeout=30).json()["components"]["ocr"]


def awake_ocr(server) -> dict:
    """OCR's /health once it has read a page (its replica warm, as local.yaml keeps it)."""
    page = png_bytes(render_receipt())
    headers = {**server.headers, "Content-Type": "image/png"}
    assert httpx.post(f"{server.url}/v1/ocr", content=page, headers=headers, timeout=120).is_success
    return wait_for(
        lambda: (h := ocr_health(server)).get("status") == "ready" and h, 60, "OCR ready"
    )


def test_health_reports_the_engine_and_its_weights(serve_server):
    ocr = awake_ocr(serve_server)
    assert ocr["status"] == "ready"
    assert {k: ocr[k] for k in RAPIDOCR} == RAPIDOCR
    assert ocr["device"] == "cpu"


def test_the_engine_switches_through_reconfigure_without_a_restart(serve_server):
    from serve_app.startup.serve_control import deploy

    data = png_bytes(render_receipt())
    headers = {**serve_server.headers, "Content-Type": "image/png"}
    before = awake_ocr(serve_server)
    raw = serve_server.config.model_dump(exclude_unset=True)
    ocr = next(d for d in raw["applications"][0]["deployments"] if d["name"] == "ocr")
    ocr["user_config"] = {**ocr["user_config"], "engine": "doctr"}
    from ray.serve.schema import ServeDeploySchema

    deploy(ServeDeploySchema.model_validate(raw))
    try:
        wait_for(lambda: ocr_health(serve_server).get("engine") == "doctr", 120, "docTR")
        read = httpx.post(f"{serve_server.url}/v1/ocr", content=data, headers=headers, timeout=120)
        assert read.status_code == 200, read.text
        assert read.json()["model"] == {
            "engine": "doctr",
            "detection": "db_mobilenet_v3_large",
            "recognition": "crnn_mobilenet_v3_small",
            "weights": "random",
        }
        # the same replica, reconfigured: not replaced
        assert ocr_health(serve_server)["replica"] == before["replica"]
    finally:
        deploy(serve_server.config)
    wait_for(lambda: ocr_health(serve_server).get("engine") == "rapidocr", 120, "rapidocr again")
    again = httpx.post(f"{serve_server.url}/v1/ocr", content=data, headers=headers, timeout=120)
    assert again.json()["model"] == RAPIDOCR
