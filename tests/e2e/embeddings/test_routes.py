"""POST /v1/embeddings through the real Ray Serve app over HTTP."""

from __future__ import annotations

import base64
import concurrent.futures
import re

import httpx
import numpy as np
import openai
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(serve_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{serve_server.url}/v1", api_key=serve_server.token)


def post(server, body, headers=None, **kwargs) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/embeddings",
        json=body,
        headers={**server.headers, **(headers or {})},
        timeout=60,
        **kwargs,
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if code:
        assert error["code"] == code, error
    return error


def test_openai_client_single_string(client, embedding_runtime):
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input="oat milk")
    assert len(result.data) == 1
    vector = np.asarray(result.data[0].embedding, dtype=np.float32)
    assert vector.shape == (384,)
    expected = embedding_runtime.embed(["oat milk"]).vectors[0]
    assert float(vector @ expected) > 0.9999
    assert result.usage.prompt_tokens == result.usage.total_tokens == 5
    assert result.model == "all-MiniLM-L6-v2"


def test_openai_client_list_keeps_order(client, embedding_runtime):
    texts = ["sourdough bread", "crème fraîche", "Oatly barista edition " * 40, "eggs"]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    assert [d.index for d in result.data] == [0, 1, 2, 3]
    got = np.asarray([d.embedding for d in result.data], dtype=np.float32)
    expected = embedding_runtime.embed(texts).vectors
    assert np.min(np.sum(got * expected, axis=1)) > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_base64_decodes_to_the_same_floats(serve_server):
    texts = ["basmati rice", "tinned chickpeas"]
    floats = post(serve_server, {"input": texts}).json()
    b64 = post(serve_server, {"input": texts, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], b64["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(decoded, np.asarray(f["embedding"], dtype=np.float32))
    assert floats["usage"] == b64["usage"]


def test_auth_required(serve_server):
    url = f"{serve_server.url}/v1/embeddings"
    missing = httpx.post(url, json={"input": "x"})
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(url, json={"input": "x"}, headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "unauthorized")
    # Health and metrics stay open.
    assert httpx.get(f"{serve_server.url}/health/live").status_code == 200


def test_request_id_echoed_or_generated(serve_server):
    echoed = post(serve_server, {"input": "milk"}, headers={"X-Request-ID": "phoenix-42"})
    assert echoed.status_code == 200
    assert echoed.headers["x-request-id"] == "phoenix-42"
    generated = post(serve_server, {"input": "milk"})
    assert re.fullmatch(r"[0-9a-f-]{32,36}", generated.headers["x-request-id"])
    error = post(serve_server, {"input": ""}, headers={"X-Request-ID": "phoenix-43"})
    assert error.json()["error"]["request_id"] == "phoenix-43"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": []}, 422, "validation_error"),
        ({"input": ""}, 422, "validation_error"),
        ({"input": "   "}, 422, "validation_error"),
        ({"input": ["ok", ""]}, 422, "validation_error"),
        ({"input": [1, 2]}, 422, "validation_error"),
        ({"input": 5}, 422, "validation_error"),
        ({"input": None}, 422, "validation_error"),
        ({"texts": ["wrong field"]}, 422, "validation_error"),
        ({"input": "x", "encoding_format": "int8"}, 422, "validation_error"),
        ({"input": "x", "dimensions": 1536}, 422, "validation_error"),
        ({"input": "x", "model": "text-embedding-3-large"}, 404, "model_not_found"),
        ({"input": ["milk"] * 65}, 413, "too_many_inputs"),
        ({"input": "a" * 1_000_000}, 413, "input_too_long"),
        ([1, 2, 3], 422, "validation_error"),
    ],
)
def test_bad_inputs_get_clear_errors(serve_server, body, status, code):
    assert_error(post(serve_server, body), status, code)


def test_invalid_json(serve_server):
    response = httpx.post(
        f"{serve_server.url}/v1/embeddings",
        content=b'{"input": ["unterminated',
        headers={**serve_server.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(serve_server, content_type):
    headers = dict(serve_server.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = httpx.post(
        f"{serve_server.url}/v1/embeddings", content=b'{"input": "x"}', headers=headers
    )
    assert_error(response, 415, "unsupported_media_type")


def test_body_over_the_limit(serve_server):
    big = b'{"input": "' + b"a" * (17 * 1024 * 1024) + b'"}'
    response = httpx.post(
        f"{serve_server.url}/v1/embeddings",
        content=big,
        headers={**serve_server.headers, "Content-Type": "application/json"},
        timeout=60,
    )
    assert_error(response, 413, "payload_too_large")


def test_unknown_route_and_method(serve_server):
    assert_error(httpx.get(f"{serve_server.url}/v1/nope", headers=serve_server.headers), 404)
    assert_error(httpx.get(f"{serve_server.url}/v1/embeddings", headers=serve_server.headers), 405)


def test_concurrent_requests_are_batched_together(serve_server):
    def metric_sum(text: str, name: str) -> float:
        pattern = rf'^{name}\{{model="embeddings"\}} (\S+)$'
        return sum(float(m) for m in re.findall(pattern, text, re.M))

    before = httpx.get(f"{serve_server.url}/metrics").text
    texts = [f"grocery item number {i}" for i in range(48)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(lambda t: post(serve_server, {"input": t}), texts))
    assert all(r.status_code == 200 for r in responses)
    after = httpx.get(f"{serve_server.url}/metrics").text
    texts_done = metric_sum(after, "serve_app_batch_items_sum") - metric_sum(
        before, "serve_app_batch_items_sum"
    )
    batches = metric_sum(after, "serve_app_batch_items_count") - metric_sum(
        before, "serve_app_batch_items_count"
    )
    assert texts_done == 48
    assert batches < 48, "48 concurrent requests ran as 48 separate batches"


def test_health_metrics_and_openapi(serve_server):
    health = httpx.get(f"{serve_server.url}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    emb = body["components"]["embeddings"]
    assert emb["status"] == "ready"
    assert emb["device"] == "cpu"
    assert emb["weights"] == "pretrained"
    assert (emb["engine"], emb["dimensions"], emb["pooling"]) == ("onnxruntime", 384, "mean")
    metrics = httpx.get(f"{serve_server.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'serve_app_requests_total{method="POST",route="/v1/embeddings",status="200"}' in (
        metrics.text
    )
    assert 'serve_app_replicas{deployment="embeddings",state="RUNNING"} 1.0' in metrics.text
    spec = httpx.get(f"{serve_server.url}/openapi.json").json()
    assert "/v1/embeddings" in spec["paths"]
    assert "/health" in spec["paths"]
