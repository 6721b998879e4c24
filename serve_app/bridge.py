"""The bridge: the public port answers embeddings and search while Ray and Serve start.

``serve-app run`` starts it first (``python -m serve_app.bridge [--host H] [--port P]``,
before its own settings are read, so the missing ones from the bridge's), before ``ray
start``. It binds the public port at once, loads the embedding model as a plain process
would, and answers ``/v1/embeddings``, ``/v1/documents`` and ``/v1/search`` with the same
code as the ingress (:class:`EmbeddingService`, :class:`StoreService`, the same middleware and
error shapes), the model running in this process. Every other request is held until Serve
answers and then forwarded to it, so none is refused or lost. When Serve's ``/health`` is 200
(serve-app asks Serve's fallback proxy, which the bridge does not stand in front of),
serve-app writes ``handover URL`` (that proxy) to the bridge's stdin: the bridge checks that
Serve's HAProxy listens in the port's socket group, steers new connections to it, finishes
what it holds (forwarded to URL), and exits, and its memory (the model) goes with it. If no
HAProxy shares the port (:func:`haproxy_missing`), steering would send connections nowhere:
the bridge keeps the port instead, passes every request on to URL, and says so (``KEPT``).

Both listen on the same address with ``SO_REUSEPORT`` (HAProxy with
``SERVE_SOCKET_REUSE_PORT_ENABLED=1``). A socket group that shares a port would spread
connections over its sockets by a hash; a classic BPF program on the group
(``SO_ATTACH_REUSEPORT_CBPF``) picks the socket instead: the bridge's own (index 0: it binds
first) until the handover, HAProxy's (index 1) after it. Linux only; classic BPF needs no
privileges.

Answers from the bridge carry ``X-Served-By: bridge``. Its ``/health`` is API.md's: 200 when
the model is loaded and the store answers; every other model of the config has no replica yet
and reports ``scaled_to_zero`` (a request to it is held until Serve answers, as a request to
a deployment at zero replicas waits for its cold start), so that Fly's proxy, which routes to
a machine once its check passes, sends embeddings and search here at once.

Commands on stdin, one JSON object or line each: ``{"components": [...], "store": bool}``
(the config's other models; until then ``/health`` is 503), ``handover URL``. At the end of
stdin (serve-app is gone) the bridge exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import sys
from typing import Any

SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant
SERVED_BY = "bridge"
# the lines serve-app waits for (BridgeProcess.wait_loaded)
LOADED, FAILED = "bridge: embedding model loaded", "bridge: embedding model failed"
# Printed once the requests that waited for the model are answered (at most CATCH_UP_S after
# the load): serve-app starts Ray then, so that those answers do not share the cores with it.
CAUGHT_UP, CATCH_UP_S = "bridge: answered what waited for the model", 1.0
# Printed at a handover when no HAProxy shares the port: the bridge stays the front door.
KEPT = "bridge: kept the port"


def steer(sock: socket.socket, index: int) -> None:
    """Send every new connection of ``sock``'s reuseport group to the group's socket number
    ``index`` (a one-instruction classic BPF program: ``ret #index``); an index the group
    does not have falls back to the kernel's hash."""
    program = ctypes.create_string_buffer(struct.pack("HBBI", BPF_RET_K, 0, 0, index))
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def listening(host: str, port: int) -> bool:
    """Whether something already accepts connections at host:port."""
    target = connect_host(host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def connect_host(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", "", "*"):
        return "127.0.0.1"
    if host in ("::", "[::]", "0::0"):
        return "::1"
    return host.strip("[]")


def haproxy_missing(sock: socket.socket) -> str | None:
    """None when an HAProxy process listens on ``sock``'s own address and port, so in its
    reuseport group (the kernel lets a second socket bind there only when both ask for
    SO_REUSEPORT); else why not. Steering to the group's second socket is safe only then."""
    import psutil

    host, port = sock.getsockname()[:2]
    others = []
    for conn in psutil.net_connections(kind="tcp"):
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.family == sock.family
            and tuple(conn.laddr)[:2] == (host, port)
            and conn.pid not in (None, os.getpid())
        ):
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                continue
            if name == "haproxy":
                return None
            others.append(f"{name} (pid {conn.pid})")
    beside = f"; only {', '.join(others)}" if others else ""
    return f"no HAProxy listens on {host}:{port} beside the bridge{beside}"


def bind(host: str, port: int) -> socket.socket:
    """The public port's first socket, steered to itself. Check :func:`listening` first:
    a socket already in the group would be the one steered to."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:  # "0::0": IPv4 and IPv6, as HAProxy's listener (cli/run.py)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host.strip("[]"), port))
    steer(sock, 0)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class PortInUse(RuntimeError):
    """Something else listens on the public port already."""


class LocalEmbeddings:
    """What :class:`EmbeddingService` calls instead of the embeddings deployment: the model in
    this process, one call at a time on one thread (a call uses every core already)."""

    name = "embeddings"

    def __init__(self, on_loaded: Any = None) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.runtime: Any = None
        self.error: BaseException | None = None
        self.loaded = threading.Event()
        self._on_loaded = on_loaded  # called on the loading thread, loaded or failed
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bridge-embed")
        self._pool.submit(self._load)

    def _load(self) -> None:
        import time

        started = time.perf_counter()
        try:
            from serve_app.embeddings.runtime import EmbeddingRuntime
            from serve_app.settings import get_settings

            runtime = EmbeddingRuntime.from_settings(get_settings())
            runtime.embed(["warm up"])  # the first forward pass is slow
            self.runtime = runtime
            print(f"{LOADED} in {time.perf_counter() - started:.1f} s", flush=True)
        except BaseException as exc:  # reported by /health and every embeddings call
            self.error = exc
            print(f"{FAILED}: {exc!r}; Serve answers embeddings when it is up", flush=True)
        finally:
            self.loaded.set()
            if self._on_loaded is not None:
                self._on_loaded()

    def _embed(self, texts: list[str]) -> Any:
        import time

        from serve_app.embeddings.jobs import EmbedResult

        if self.runtime is None:
            raise RuntimeError(f"the embedding model did not load: {self.error!r}")
        started = time.perf_counter()
        output = self.runtime.embed(texts)
        return EmbedResult(
            vectors=output.vectors,
            token_counts=output.token_counts,
            batch_jobs=1,
            batch_texts=len(texts),
            batch_leader=True,
            batch_seconds=time.perf_counter() - started,
        )

    async def call(self, method: str, job: Any) -> Any:
        import asyncio

        assert method == "embed", method
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._embed, job.texts)

    def info(self) -> dict[str, Any]:
        if not self.loaded.is_set():
            return {"status": "starting", "reason": "loading the model", "served_by": SERVED_BY}
        if self.runtime is None:
            return {"status": "starting", "reason": repr(self.error)[:200], "served_by": SERVED_BY}
        from serve_app.settings import get_settings

        return {**self.runtime.info(get_settings().embeddings_model_name), "served_by": SERVED_BY}


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

    def __init__(self, host: str, port: int, sock: socket.socket, loop: Any):
        import asyncio

        self.host, self.port, self.sock = host, port, sock
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
        """On the loop: the model loaded (or failed). Requests held for it go on; once they
        are answered (at most :data:`CATCH_UP_S`), :data:`CAUGHT_UP` tells serve-app."""
        import asyncio

        self.model_ready.set()

        async def caught_up() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.none_waiting.wait(), CATCH_UP_S)
            print(f"{CAUGHT_UP} ({self.answered} answered here)", flush=True)

        self._catching_up = asyncio.ensure_future(caught_up())

    @contextlib.contextmanager
    def held_for_model(self) -> Any:
        """Around a request that needs the model: counted while it waits for the load and
        until it is answered, when it came before the load."""
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

    async def health(self) -> tuple[int, dict[str, Any]]:
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
        states = {c["status"] for c in components.values()}
        overall = "ok" if states <= {"ready", "scaled_to_zero"} else "starting"
        from serve_app import __version__

        body = {"status": overall, "version": __version__, "components": components}
        return (200 if overall == "ok" else 503), body

    async def forward(self, request: Any) -> Any:
        """Hold a request until Serve answers, then pass it on (HAProxy on the same port)."""
        import asyncio

        import httpx
        from starlette.responses import Response

        from serve_app.errors import retry_later
        from serve_app.settings import get_settings

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
        """Whether the bridge answers ``path`` itself: health, and what needs the model
        once it has loaded (a model that failed to load leaves those to Serve); nothing once
        it has kept the port past the handover."""
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
            from starlette.exceptions import HTTPException
            from starlette.requests import Request

            from serve_app.errors import ApiError, error_response

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
    """The bridge's FastAPI app: the ingress's embeddings and store routes, its middleware and
    error handlers, and a /health of its own; everything else is forwarded (:class:`Dispatch`)."""
    from fastapi import FastAPI
    from starlette.responses import Response

    from serve_app.embeddings.model_files import served_export
    from serve_app.embeddings.routes import router as embeddings_router
    from serve_app.embeddings.serving import EmbeddingService
    from serve_app.http_errors import install_error_handlers
    from serve_app.middleware import InflightCounter, IngressMiddleware
    from serve_app.responses import FastJSONResponse
    from serve_app.settings import get_settings
    from serve_app.store.routes import router as store_router

    settings = get_settings()
    app = FastAPI(title="grocery-planner-ai (bridge)", default_response_class=FastJSONResponse)
    install_error_handlers(app)
    app.add_middleware(Dispatch, bridge=bridge)  # inside the ingress's checks (added last)
    app.add_middleware(
        IngressMiddleware,
        settings=settings,
        inflight=InflightCounter(),
        raw_body_paths=("/v1/ocr",),
        echo_request_id=True,
    )

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health")
    async def health() -> Response:
        code, body = await bridge.health()
        return FastJSONResponse(body, status_code=code)

    model = served_export(settings)  # `serve-app run` made it before it started the bridge
    app.state.embeddings = EmbeddingService(bridge.embeddings, settings, model)  # type: ignore[arg-type]
    app.include_router(embeddings_router)
    app.include_router(store_router)  # reached once serve-app says the config has a store
    return app


def use_store(bridge: Bridge, app: Any) -> None:
    """Serve /v1/documents and /v1/search here too (the config has the store)."""
    from serve_app.settings import get_settings
    from serve_app.store.db import create_store
    from serve_app.store.serving import StoreService

    settings = get_settings()
    store = create_store(settings, app.state.embeddings.dimensions)
    app.state.store = StoreService(store, app.state.embeddings, settings)
    bridge.store = app.state.store.store


def bind_host(host: str, proxy: str) -> str:
    """The listen address as Serve's proxy needs it. Serve turns "::" into HAProxy's "*",
    which is IPv4 only; "0::0" (the same address, spelled so that Serve passes it through)
    makes HAProxy and the Python proxy behind it listen on IPv4 and IPv6: Fly's proxy
    connects over IPv4, 6PN traffic is IPv6."""
    if proxy == "haproxy" and host in ("::", "[::]"):
        return "0::0"
    return host


def resolve_address(args: Any) -> str | None:
    """``args.host`` and ``args.port`` from the settings where not given; why the bridge must
    not start, if so (it is off, or the address needs a token that is not set)."""
    from serve_app.settings import get_settings, is_loopback

    settings = get_settings()
    if not settings.bridge or settings.proxy != "haproxy":
        return "bridge: off (SERVE_APP_BRIDGE, SERVE_APP_PROXY)"
    args.host = bind_host(args.host or settings.host, settings.proxy)
    args.port = args.port or settings.port
    if settings.api_token_value() is None and not is_loopback(args.host):
        return f"bridge: refusing to listen on {args.host} without SERVE_APP_API_TOKEN"
    return None


async def hand_over(bridge: Bridge, server: Any, url: str) -> bool:
    """Serve answers at ``url``: steer new connections to HAProxy (the port's group's second
    socket), forward what is held to ``url``, then let ``server`` finish and exit (True). With
    no HAProxy in the group, keep the port and pass every request on to ``url`` (False)."""
    import asyncio

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


def main(argv: list[str] | None = None) -> int:
    import argparse
    import asyncio
    import json
    import threading

    parser = argparse.ArgumentParser(prog="python -m serve_app.bridge")
    parser.add_argument("--host", help="default: SERVE_APP_HOST")
    parser.add_argument("--port", type=int, help="default: SERVE_APP_PORT")
    args = parser.parse_args(argv)
    if args.host is None or args.port is None:  # started before serve-app read its settings
        refused = resolve_address(args)
        if refused:
            print(refused, flush=True)
            return 4
    if listening(args.host, args.port):
        print(f"bridge: port {args.port} on {args.host} is in use", flush=True)
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"bridge: cannot listen on {args.host}:{args.port}: {exc}", flush=True)
        return 3
    print(f"bridge: listening on {args.host}:{args.port}", flush=True)

    import uvicorn

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    bridge = Bridge(args.host, args.port, sock, loop)
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
                message = json.loads(line)
                loop.call_soon_threadsafe(configure, message)
        loop.call_soon_threadsafe(bridge.gone.set)  # serve-app is gone: so is Serve
        loop.call_soon_threadsafe(setattr, server, "should_exit", True)

    def configure(message: dict[str, Any]) -> None:
        bridge.components = list(message.get("components", []))
        if message.get("store"):
            use_store(bridge, app)

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


class BridgeProcess:
    """serve-app's side of the bridge: start it, tell it the config, hand over, stop. Its
    output goes to serve-app's own."""

    # The bridge listens within a second (its settings); a start that takes longer is given
    # up: the port answers once Serve is ready.
    START_TIMEOUT_S = 30.0

    def __init__(self, host: str | None = None, port: int | None = None):
        self.host, self.port = host, port  # None: the bridge reads its settings
        self.proc: Any = None
        self._first: Any = None
        self._relay: Any = None
        self._loaded: Any = None
        self._kept: Any = None

    @classmethod
    def early(cls, argv: list[str]) -> BridgeProcess | None:
        """``serve-app run ARGV``'s bridge, spawned before serve-app's slower imports (its
        settings are the most of them): the port answers sooner. serve-app decides once it
        has read them (:meth:`wait_listening` or :meth:`stop`). None on someone else's
        cluster (RAY_ADDRESS), where serve-app starts no bridge."""
        import argparse

        if os.environ.get("RAY_ADDRESS"):
            return None
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--host")
        parser.add_argument("--port", type=int)
        known, _ = parser.parse_known_args(argv)
        process = cls(known.host, known.port)
        process.spawn()
        return process

    def spawn(self) -> None:
        """Start the bridge process; :meth:`wait_listening` waits for it to listen."""
        import queue
        import subprocess
        import threading

        address = []
        for option, value in (("--host", self.host), ("--port", self.port)):
            address += [option, str(value)] if value is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serve_app.bridge", *address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._first = queue.Queue()
        proc = self.proc
        threading.Thread(
            target=lambda: self._first.put(proc.stdout.readline()), daemon=True
        ).start()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the bridge and wait until it listens (:meth:`wait_listening`)."""
        self.spawn()
        self.wait_listening(timeout_s)

    def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the bridge listens, at most ``timeout_s``; RuntimeError (PortInUse) with
        its words if not."""
        import queue
        import threading

        try:
            first = self._first.get(timeout=timeout_s)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise RuntimeError(f"the bridge did not listen within {timeout_s:.0f} s") from None
        if not first.startswith("bridge: listening"):
            rest = self.proc.stdout.read()
            self.proc.wait()
            words = (first + rest).strip() or f"exit {self.proc.returncode}"
            self.proc = None
            raise (PortInUse if "in use" in first else RuntimeError)(words)
        print(first, end="", flush=True)
        self._loaded = threading.Event()
        self._kept = threading.Event()
        self._relay = threading.Thread(target=self._print, daemon=True, name="bridge-output")
        self._relay.start()

    def _print(self) -> None:
        for line in self.proc.stdout:
            print(line, end="", flush=True)
            if line.startswith((CAUGHT_UP, FAILED)):
                self._loaded.set()
            if line.startswith(KEPT):
                self._kept.set()
        self._loaded.set()  # the bridge exited

    def wait_loaded(self, timeout_s: float) -> bool:
        """Wait until the bridge has loaded its model and answered the requests that waited
        for it (or failed, or exited), at most ``timeout_s``: serve-app starts Ray after it,
        so that the first answers do not share the cores with Ray's start."""
        return self._loaded is not None and self._loaded.wait(timeout_s)

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):  # the bridge is gone already
            pass

    def configure(self, components: list[str], store: bool) -> None:
        """The config's models besides embeddings, and whether the bridge serves the store."""
        import json

        self._send(json.dumps({"components": components, "store": store}))

    def handover(self, serve_url: str, timeout_s: float = 180) -> bool:
        """Serve answers at ``serve_url``: new connections go to its HAProxy; True once the
        bridge has finished what it held and exited (stopped after ``timeout_s``). False when
        it kept the port (no HAProxy shares it, :data:`KEPT`): it passes every request on to
        Serve until :meth:`stop`."""
        import time

        self._send(f"handover {serve_url}")
        deadline = time.monotonic() + timeout_s
        while self.proc is not None and self.proc.poll() is None:
            if self._kept is not None and self._kept.wait(0.1):
                return False
            if time.monotonic() > deadline:
                break
        self.stop()
        return True

    def stop(self, timeout_s: float = 10) -> None:
        import subprocess

        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the bridge exits at the end of its stdin
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._relay is not None:
            self._relay.join(5)


if __name__ == "__main__":
    sys.exit(main())
