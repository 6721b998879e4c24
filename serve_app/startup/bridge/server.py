"""The bridge process (``python -m serve_app.startup.bridge``): the embedding model in this process,
the ingress's embeddings and store routes on the public port, every other request held and
forwarded once Serve answers, and the handover to Serve's HAProxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import threading
from typing import Any

import httpx
import uvicorn
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from serve_app.embeddings.model_files import served_export
from serve_app.embeddings.routes import router as embeddings_router
from serve_app.embeddings.serving import EmbeddingService
from serve_app.errors import ApiError, error_response, retry_later
from serve_app.http_app import create_http_app
from serve_app.settings import get_settings
from serve_app.startup.bridge import CATCH_UP_S, CAUGHT_UP, KEPT
from serve_app.startup.bridge.model import LocalEmbeddings
from serve_app.startup.bridge.sockets import haproxy_missing, steer
from serve_app.store.db import create_store
from serve_app.store.routes import router as store_router
from serve_app.store.serving import StoreService

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "x-request-id",  # the bridge's middleware sets and echoes it
    "upgrade",
}


class Bridge:
    """The bridge's state: the config serve-app sent, the upstream once Serve answers."""

    def __init__(self, sock: socket.socket, loop: Any):
        self.sock = sock
        self.model_ready = asyncio.Event()  # loaded or failed: requests for it wait until then
        self.waiting = 0  # requests that came before the model, not yet answered
        self.none_waiting = asyncio.Event()
        self.none_waiting.set()
        self._catching_up: Any = None  # the task that prints CAUGHT_UP
        self.embeddings = LocalEmbeddings(lambda: loop.call_soon_threadsafe(self._model_done))
        self.components: list[str] | None = None  # the config's other models
        self.store: Any = None
        self.upstream = asyncio.Event()  # set at the handover: forward to Serve from then
        self.serve_url: str | None = None  # where: Serve's proxy, as serve-app gave it
        self.kept = False  # no HAProxy shares the port: the bridge passes everything on
        self._client: Any = None
        self.gone = asyncio.Event()  # serve-app went away: Serve never comes
        self.answered = 0
        self.forwarded = 0

    def _model_done(self) -> None:
        """On the loop: the model loaded (or failed); :data:`CAUGHT_UP` once what it held is
        answered (at most :data:`CATCH_UP_S`)."""
        self.model_ready.set()

        async def caught_up() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.none_waiting.wait(), CATCH_UP_S)
            print(f"{CAUGHT_UP} ({self.answered} answered here)", flush=True)

        self._catching_up = asyncio.ensure_future(caught_up())

    @contextlib.contextmanager
    def held_for_model(self) -> Any:
        """Around a request that needs the model: counted until answered if it came first."""
        if self.model_ready.is_set():
            yield
            return
        self.waiting += 1
        self.none_waiting.clear()
        try:
            yield
        finally:
            self.waiting -= 1
            if self.waiting == 0:
                self.none_waiting.set()

    async def health_components(self) -> dict[str, dict[str, Any]]:
        """``/health``'s components while the bridge answers (:func:`health_answer`)."""
        components: dict[str, Any] = {"embeddings": self.embeddings.info()}
        if self.components is None:
            components["serve"] = {"status": "starting", "reason": "reading the config"}
        else:
            for name in self.components:
                components[name] = {
                    "status": "scaled_to_zero",
                    "reason": "Ray Serve is starting; a request waits for it",
                }
        if self.store is not None:
            components["store"] = await self.store.status()
        return components

    async def forward(self, request: Any) -> Any:
        """Hold a request until Serve answers, then pass it on (HAProxy on the same port)."""
        settings = get_settings()
        waits = [asyncio.ensure_future(e.wait()) for e in (self.upstream, self.gone)]
        await asyncio.wait(waits, timeout=settings.request_timeout_s, return_when="FIRST_COMPLETED")
        for wait in waits:
            wait.cancel()
        if not self.upstream.is_set():
            raise retry_later(
                "starting", "The server is still starting; retry shortly.", settings.retry_after_s
            )
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append(("x-request-id", request.state.request_id))
        body = await request.body()  # within the middleware's size limit
        if self._client is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            timeout = settings.request_timeout_s + 30
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits)
        try:
            upstream = await self._client.request(
                request.method,
                f"{self.serve_url}{request.url.path}",
                params=request.url.query or None,
                headers=headers,
                content=body,
            )
        except httpx.HTTPError as exc:  # Serve answered serve-app, then went away
            raise retry_later(
                "unavailable",
                f"Serve did not answer ({type(exc).__name__}); retry shortly.",
                settings.retry_after_s,
            ) from None
        self.forwarded += 1
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)


class Dispatch:
    """ASGI middleware: what the bridge answers itself goes on to its routes (marked
    ``X-Served-By: bridge``); the rest is held and forwarded (:meth:`Bridge.forward`)."""

    HEALTH = ("/health", "/health/live")

    def __init__(self, app: Any, bridge: Bridge):
        self.app, self.bridge = app, bridge

    @staticmethod
    def store_path(path: str) -> bool:
        return path in ("/v1/search", "/v1/documents") or path.startswith("/v1/documents/")

    def local(self, path: str) -> bool:
        """Whether the bridge answers ``path`` itself: health, and what needs the model once
        it has loaded; nothing once it has kept the port past the handover."""
        if self.bridge.kept:
            return False
        if path in self.HEALTH:
            return True
        if self.bridge.embeddings.runtime is None:
            return False
        return path == "/v1/embeddings" or (self.bridge.store is not None and self.store_path(path))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.bridge.kept and (
            scope["path"] == "/v1/embeddings" or self.store_path(scope["path"])
        ):
            with self.bridge.held_for_model():
                # waits for the model here, not in the batching queue (which would shed it)
                await self.bridge.model_ready.wait()
                await self.dispatch(scope, receive, send)
            return
        await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.local(scope["path"]):
            request = Request(scope, receive)
            request_id = request.state.request_id
            try:
                response = await self.bridge.forward(request)
            except ApiError as exc:
                response = error_response(
                    exc.status, exc.code, exc.message, request_id, exc.headers
                )
            except HTTPException as exc:  # the body over the size limit (IngressMiddleware)
                code = "payload_too_large" if exc.status_code == 413 else "bad_request"
                response = error_response(exc.status_code, code, str(exc.detail), request_id)
            await response(scope, receive, send)
            return

        async def marked(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-served-by", b"bridge")]
            await send(message)

        self.bridge.answered += 1
        await self.app(scope, receive, marked)


def create_app(bridge: Bridge) -> Any:
    """The public port's app with the ingress's embeddings and store routes; everything else is
    forwarded (:class:`Dispatch`)."""
    settings = get_settings()
    app = create_http_app(
        settings,
        bridge.health_components,
        title="grocery-planner-ai (bridge)",
        echo_request_id=True,
        inner=(Dispatch, {"bridge": bridge}),
    )
    model = served_export(settings)  # `serve-app run` made it before it started the bridge
    app.state.embeddings = EmbeddingService(bridge.embeddings, settings, model)  # type: ignore[arg-type]
    app.include_router(embeddings_router)
    app.include_router(store_router)  # reached once serve-app says the config has a store
    return app


async def hand_over(bridge: Bridge, server: Any, url: str) -> bool:
    """Steer new connections to HAProxy, forward what is held to ``url``, let ``server`` finish
    (True); with no HAProxy in the group, keep the port and pass everything on (False)."""
    bridge.serve_url = url.rstrip("/")
    why = haproxy_missing(bridge.sock)
    if why:
        bridge.kept = True
        bridge.upstream.set()
        print(f"{KEPT}: {why}; it passes every request on to Serve at {url}", flush=True)
        return False
    steer(bridge.sock, 1)
    bridge.upstream.set()
    await asyncio.sleep(0.5)  # connections already queued here are accepted and served
    server.should_exit = True  # then uvicorn closes the socket and finishes what it holds
    return True


def serve(sock: socket.socket) -> int:
    """Answer on ``sock`` (the public port, bound by :mod:`serve_app.startup.bridge.__main__`) until
    the handover or the end of stdin."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    bridge = Bridge(sock, loop)
    app = create_app(bridge)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=150)
    server = uvicorn.Server(config)

    def commands() -> None:
        for line in sys.stdin:
            line = line.strip()
            if line.startswith("handover "):
                url = line.removeprefix("handover ")
                asyncio.run_coroutine_threadsafe(hand_over(bridge, server, url), loop)
            elif line.startswith("{"):
                loop.call_soon_threadsafe(configure, json.loads(line))
        loop.call_soon_threadsafe(bridge.gone.set)  # serve-app is gone: so is Serve
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    def configure(message: dict[str, Any]) -> None:
        bridge.components = list(message.get("components", []))
        if message.get("store"):  # serve /v1/documents and /v1/search here too
            settings = get_settings()
            store = create_store(settings, app.state.embeddings.dimensions)
            app.state.store = StoreService(store, app.state.embeddings, settings)
            bridge.store = store

    threading.Thread(target=commands, daemon=True, name="bridge-commands").start()
    loop.run_until_complete(server.serve(sockets=[sock]))
    if bridge.store is not None:
        loop.run_until_complete(bridge.store.close())
    if bridge._client is not None:
        loop.run_until_complete(bridge._client.aclose())
    what = "handed over" if bridge.upstream.is_set() and not bridge.kept else "stopped"
    print(
        f"bridge: {what} ({bridge.answered} requests answered here, "
        f"{bridge.forwarded} forwarded to Serve)",
        flush=True,
    )
    return 0
