"""IngressMiddleware and the error handlers on a small FastAPI app (no Ray)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from serve_app.http_errors import install_error_handlers
from serve_app.middleware import InflightCounter, IngressMiddleware
from serve_app.settings import Settings


class Echo(BaseModel):
    text: str


def make_app(token: str | None, max_body: int = 4096) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    settings = Settings(api_token=token, max_body_bytes=max_body)
    app.add_middleware(IngressMiddleware, settings=settings, inflight=InflightCounter())

    @app.post("/v1/echo")
    async def echo(body: Echo) -> dict[str, str]:
        return {"text": body.text}

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app("secret"), raise_server_exceptions=False)


def test_bearer_token(client: TestClient):
    assert client.post("/v1/echo", json={"text": "a"}).status_code == 401
    bad = client.post("/v1/echo", json={"text": "a"}, headers={"Authorization": "Basic secret"})
    assert bad.status_code == 401
    ok = client.post("/v1/echo", json={"text": "a"}, headers={"Authorization": "Bearer secret"})
    assert ok.status_code == 200
    assert ok.json() == {"text": "a"}


def test_no_token_serves_loopback_only():
    app = make_app(None)
    remote = TestClient(app, client=("203.0.113.9", 5000))
    response = remote.post("/v1/echo", json={"text": "a"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    local = TestClient(app, client=("127.0.0.1", 5000))
    assert local.post("/v1/echo", json={"text": "a"}).status_code == 200


def test_request_id_generated_and_echoed(client: TestClient):
    auth = {"Authorization": "Bearer secret"}
    given = client.post("/v1/echo", json={"text": "a"}, headers={**auth, "X-Request-ID": "abc-1"})
    assert given.headers["x-request-id"] == "abc-1"
    generated = client.post("/v1/echo", json={"text": "a"}, headers=auth)
    assert len(generated.headers["x-request-id"]) == 32
    # Ids that could inject headers or flood logs are replaced.
    odd = client.post("/v1/echo", json={"text": "a"}, headers={**auth, "X-Request-ID": "a b"})
    assert odd.headers["x-request-id"] != "a b"


def test_chunked_body_over_the_limit(client: TestClient):
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = client.post(
        "/v1/echo",
        content=chunks(),
        headers={"Authorization": "Bearer secret", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_unexpected_exception_is_json_500(client: TestClient):
    response = client.get("/v1/boom", headers={"Authorization": "Bearer secret"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "bug" not in response.text  # no internals leak


def test_invalid_content_length(client: TestClient):
    response = client.post(
        "/v1/echo",
        content=b"{}",
        headers={
            "Authorization": "Bearer secret",
            "Content-Type": "application/json",
            "Content-Length": "abc",
        },
    )
    assert response.status_code == 400
