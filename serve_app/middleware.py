"""Pure-ASGI middleware: request ids, bearer auth, body limits, content types, metrics."""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException

from serve_app.errors import error_response
from serve_app.metrics import HTTP_INFLIGHT, LATENCY, REQUESTS
from serve_app.settings import Settings, is_loopback, secret_value

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _is_json(content_type: str | None) -> bool:
    main = (content_type or "").split(";", 1)[0].strip().lower()
    return main == "application/json" or (
        main.startswith("application/") and main.endswith("+json")
    )


class InflightCounter:
    """HTTP requests inside this ingress replica right now (for draining on shutdown)."""

    def __init__(self) -> None:
        self.value = 0
        self.draining = False


class IngressMiddleware:
    """Runs before routing, in this order: request id, auth, size and type checks, metrics.

    ``echo_request_id=False`` under Ray Serve, whose proxy sets and echoes X-Request-ID.
    ``raw_body_paths`` take non-JSON bodies (uploads); other POST/PUT/PATCH under ``/v1/``
    must be JSON.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        inflight: InflightCounter,
        raw_body_paths: tuple[str, ...] = (),
        echo_request_id: bool = True,
    ):
        self.app = app
        self.echo_request_id = echo_request_id
        self.inflight = inflight
        self.token = secret_value(settings.api_token)
        self.max_body = settings.max_body_bytes
        self.raw_body_paths = raw_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = [500]
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                if self.echo_request_id:
                    message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        self.inflight.value += 1
        api_call = scope["path"].startswith("/v1/")  # not health checks and scrapes
        if api_call:
            HTTP_INFLIGHT.inc()
        try:
            rejection = self._reject(scope, request_id)
            if rejection is not None:
                await rejection(scope, receive, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        finally:
            self.inflight.value -= 1
            if api_call:
                HTTP_INFLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(template, scope["method"], str(status_holder[0])).inc()
            LATENCY.labels(template).observe(time.perf_counter() - started)

    def _reject(self, scope: Scope, request_id: str) -> ASGIApp | None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # apps mounted under a route prefix
            path = path[len(root) :]
        if not path.startswith("/v1/"):
            return None
        if self.token is None:
            client = scope.get("client")
            if client and not is_loopback(client[0]):
                return error_response(
                    403,
                    "forbidden",
                    "No API token is configured, so only loopback clients are served.",
                    request_id,
                )
        else:
            auth = _header(scope, b"authorization") or ""
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            ):
                return error_response(
                    401,
                    "unauthorized",
                    "Missing or wrong bearer token in the Authorization header.",
                    request_id,
                    {"WWW-Authenticate": "Bearer"},
                )
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return error_response(400, "bad_request", "Invalid Content-Length.", request_id)
            if too_big:
                return error_response(
                    413,
                    "payload_too_large",
                    f"The request body is larger than {self.max_body} bytes.",
                    request_id,
                )
        if scope["method"] in ("POST", "PUT", "PATCH") and not path.startswith(self.raw_body_paths):
            content_type = _header(scope, b"content-type")
            if not _is_json(content_type):
                return error_response(
                    415,
                    "unsupported_media_type",
                    f"Expected Content-Type application/json, got {content_type or 'none'}.",
                    request_id,
                )
        return None

    def _limited(self, receive: Receive) -> Receive:
        """Stops bodies without Content-Length (chunked) at the same limit."""
        seen = 0
        limit = self.max_body

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"The request body is larger than {limit} bytes.")
            return message

        return limited_receive
