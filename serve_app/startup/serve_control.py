"""The supervisor's steps that talk to Ray and Serve: connect, deploy, wait for ``/health``,
drain, shut down. Ray is imported inside each: ``serve-app`` spawns the bridge before it."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from serve_app.cluster import SERVE_NAMESPACE
from serve_app.net import join_host_port
from serve_app.startup import StartupError
from serve_app.startup.bridge.sockets import connect_host


class StoppedWhileStarting(Exception):
    """A signal came while Ray started: what was started stops, and serve-app exits 0."""


def fallback_url(host: str) -> str:
    """Serve's own Python proxy behind HAProxy: it answers for Serve while the bridge holds
    the public port."""
    port = int(os.environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
    return f"http://{join_host_port(connect_host(host), port)}"


def connect_ray(address: str) -> None:
    import ray

    ray.init(
        address=address,
        namespace=SERVE_NAMESPACE,
        log_to_driver=True,
        configure_logging=True,
        logging_level="WARNING",
    )


def deploy(config: Any) -> None:
    """Deploy a config through Ray's own path (what `serve run config.yaml` does)."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions

    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
    )
    client.deploy_apps(config, _blocking=False)


def deploy_failure(app_names: list[str]) -> str | None:
    """The message of an application Serve gave up deploying, if any."""
    from ray import serve
    from ray.exceptions import RayError
    from ray.serve.exceptions import RayServeException

    try:
        status = serve.status()
    except (RayServeException, RayError):
        return None
    for name in app_names:
        app = status.applications.get(name)
        if app is not None and str(getattr(app.status, "value", app.status)) == "DEPLOY_FAILED":
            return f"application {name} failed to deploy: {app.message}"
    return None


def wait_ready(
    url: str,
    timeout_s: float,
    quiet: bool = False,
    stop: threading.Event | None = None,
    app_names: list[str] | None = None,
) -> dict[str, Any] | None:
    """Poll /health until 200 and return its body, printing component states as they change;
    None once ``stop`` is set; StartupError when Serve reports a failed deployment."""
    import httpx  # here: the bridge starts before this module's slower imports

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            return None
        failure = deploy_failure(app_names) if app_names else None
        if failure:
            raise StartupError(failure)
        try:
            response = httpx.get(f"{url}/health", timeout=10)
            body = response.json()
            summary = ", ".join(
                f"{name}: {c.get('status')}" for name, c in body.get("components", {}).items()
            )
            if response.status_code == 200:
                return body
        except (httpx.HTTPError, ValueError):
            summary = "waiting for the HTTP proxy"
        if summary != last and not quiet:
            print(f"  ... {summary}", flush=True)
            last = summary
        time.sleep(1.0)
    raise StartupError(f"server not ready after {timeout_s:.0f} s ({last})")


def drain(config: Any, timeout_s: float, quiet_s: float = 1.0) -> None:
    """Fail readiness, then wait until no HTTP request has been in flight for ``quiet_s``
    (requests already on their way through the proxy still arrive), at most ``timeout_s``."""
    from ray import serve
    from ray.exceptions import RayError
    from ray.serve.exceptions import RayServeException

    deadline = time.monotonic() + timeout_s
    for app in config.applications:
        try:
            handle = serve.get_deployment_handle("ingress", app_name=app.name)
            if not handle.is_initialized:  # Serve caches handles per process
                # no event loop here; the router needs its own (RAY_SERVE_THROUGHPUT_OPTIMIZED)
                handle._init(_run_router_in_separate_loop=True)
            quiet_since = time.monotonic()
            while time.monotonic() < deadline:
                left = handle.drain.remote().result(timeout_s=5)
                now = time.monotonic()
                if left:
                    quiet_since = now
                    print(f"  ... waiting for {left} requests in flight", flush=True)
                elif now - quiet_since >= quiet_s:
                    break
                time.sleep(0.2)
            else:
                print("drain timeout: stopping with requests in flight", flush=True)
        except (KeyError, RayError, RayServeException) as exc:
            # The app never came up or Ray is already gone: nothing left to drain.
            print(f"  no drain for {app.name}: {type(exc).__name__}: {exc}", flush=True)
        except Exception as exc:  # shutdown goes on: Ray and PostgreSQL must still stop
            print(f"  drain failed for {app.name}: {type(exc).__name__}: {exc}", flush=True)


def shutdown_serve(timeout_s: float) -> None:
    """serve.shutdown() with a deadline: with HAProxy it takes about 30 s (a replica waits out
    HAProxy's idle keep-alive connections); requests are drained already."""
    import ray
    from ray import serve

    worker = threading.Thread(target=serve.shutdown, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        print(f"serve.shutdown() still running after {timeout_s:.0f} s; stopping Ray", flush=True)
        return
    ray.shutdown()


def disconnect_ray() -> None:
    """Leave the cluster, so that stopping the head does not end this process with it."""
    import ray

    ray.shutdown()
