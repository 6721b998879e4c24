"""``python -m serve_app.startup.bridge``: bind the public port first, then load and run the
bridge (:mod:`serve_app.startup.bridge.server`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from serve_app.startup.bridge.sockets import bind, bind_host, listening


def resolve_address(args: Any) -> str | None:
    """Fill ``args.host`` and ``args.port`` from the settings; why the bridge must not start,
    or None."""
    from serve_app.settings import get_settings, is_loopback, secret_value  # only when not given

    settings = get_settings()
    if not settings.bridge or settings.proxy != "haproxy":
        return "bridge: off (SERVE_APP_BRIDGE, SERVE_APP_PROXY)"
    args.host = bind_host(args.host or settings.host, settings.proxy)
    args.port = args.port or settings.port
    if secret_value(settings.api_token) is None and not is_loopback(args.host):
        return f"bridge: refusing to listen on {args.host} without SERVE_APP_API_TOKEN"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.startup.bridge")
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
    from serve_app.startup.bridge.server import serve  # the app, the model: after the port is bound

    return serve(sock)


if __name__ == "__main__":
    sys.exit(main())
