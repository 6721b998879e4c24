"""The public port's HTTP app, for the ingress and the bridge that answers while Serve starts:
the same middleware, error shape, ``/health/live`` and ``/health`` for both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from serve_app import __version__
from serve_app.http_errors import install_error_handlers
from serve_app.middleware import InflightCounter, IngressMiddleware
from serve_app.responses import FastJSONResponse
from serve_app.settings import Settings

RAW_BODY_PATHS = ("/v1/ocr",)  # POST routes that take uploads, not JSON


def health_answer(components: dict[str, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """``/health`` from its components' states (API.md): ``ok`` (200) when each is ready or
    at zero replicas, ``degraded`` (200) when some are only ``unavailable`` (a component the
    configuration allows to be missing), else ``starting`` (503)."""
    states = {c["status"] for c in components.values()}
    if states <= {"ready", "scaled_to_zero"}:
        overall = "ok"
    elif states <= {"ready", "scaled_to_zero", "unavailable"}:
        overall = "degraded"
    else:
        overall = "starting"
    body = {"status": overall, "version": __version__, "components": components}
    return (503 if overall == "starting" else 200), body


def create_http_app(
    settings: Settings,
    components: Callable[[], Awaitable[dict[str, dict[str, Any]]]],
    *,
    title: str = "grocery-planner-ai",
    inflight: InflightCounter | None = None,
    echo_request_id: bool = False,
    inner: tuple[type, dict[str, Any]] | None = None,
) -> FastAPI:
    """The app with the public port's middleware, errors and health; the caller adds routes.
    While ``inflight`` is draining ``/health`` is 503 ``draining`` (load balancers stop
    sending). ``inner``: a middleware (class, keyword arguments) that runs after the checks."""
    app = FastAPI(
        title=title,
        version=__version__,
        description="Private model server for Grocery Planner (see API.md).",
        default_response_class=FastJSONResponse,
    )
    install_error_handlers(app)
    inflight = inflight or InflightCounter()
    if inner is not None:
        app.add_middleware(inner[0], **inner[1])  # added first: runs inside the checks
    app.add_middleware(
        IngressMiddleware,
        settings=settings,
        inflight=inflight,
        raw_body_paths=RAW_BODY_PATHS,
        echo_request_id=echo_request_id,
    )

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health", tags=["health"], responses={503: {"description": "not ready"}})
    async def health() -> Response:
        code, body = health_answer(await components())
        if inflight.draining:
            code, body["status"] = 503, "draining"
        return FastJSONResponse(body, status_code=code)

    return app
