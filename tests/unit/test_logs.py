"""Logging helpers and the optional Sentry reporting (against a local capture server)."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from serve_app.logs import Every, get_logger, init_sentry
from serve_app.settings import Settings


def test_loggers_go_through_serves_handlers():
    assert get_logger("serve_app.ingress").name == "ray.serve.serve_app.ingress"


def test_every_lets_one_line_through_per_interval():
    every = Every(60)
    assert every() is True
    assert [every() for _ in range(5)] == [False] * 5
    assert every.suppressed == 5


def test_sentry_is_off_without_a_dsn():
    assert init_sentry(Settings(sentry_dsn=None), "test") is False


def test_sentry_reports_to_the_configured_dsn():
    received: list[tuple[str, bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append((self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import sentry_sdk

        dsn = f"http://publickey@127.0.0.1:{server.server_port}/42"
        assert init_sentry(Settings(sentry_dsn=dsn, sentry_environment="test"), "ingress")
        sentry_sdk.capture_message("grocery-planner-ai sentry check")
        sentry_sdk.flush(timeout=10)
        paths = [p for p, _ in received]
        assert any(p.startswith("/api/42/envelope") for p in paths), paths
        body = b"".join(b for _, b in received)
        assert b"grocery-planner-ai sentry check" in body
        assert b'"component":"ingress"' in body.replace(b" ", b"")
    finally:
        import sentry_sdk

        sentry_sdk.init(dsn=None)  # off again for the rest of the session
        server.shutdown()
