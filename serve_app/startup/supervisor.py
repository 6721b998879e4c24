"""The supervisor: what ``serve-app run`` does, in order (docs/architecture.md): the model's
export, the bridge, the database, Ray, the deploy, the port's handover to Serve; on
SIGINT/SIGTERM a drain, then it stops what it started."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_app.cluster import LocalRayHead, node_ip, tune_allocator, use_cluster_token
from serve_app.embeddings.model_files import ModelExport, ModelNotServable, served_export
from serve_app.net import join_host_port
from serve_app.proxy import configure_proxy, stop_orphaned_haproxy
from serve_app.settings import Settings, get_settings, is_loopback, secret_value
from serve_app.startup import StartupError, stop_on_signals
from serve_app.startup.bridge.process import BridgeProcess
from serve_app.startup.bridge.sockets import PortInUse, bind_host
from serve_app.startup.config import (
    bridge_components,
    bridge_unsuitable,
    fit_cpus,
    load_config,
    read_config,
    serves_embeddings,
    uses_store,
)
from serve_app.startup.serve_control import (
    StoppedWhileStarting,
    connect_ray,
    deploy,
    disconnect_ray,
    drain,
    fallback_url,
    shutdown_serve,
    wait_ready,
)


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without a token (API.md)."""
    if secret_value(settings.api_token) is None and not is_loopback(host):
        raise StartupError(
            f"refusing to listen on {host}: no API token is configured. Set "
            "SERVE_APP_API_TOKEN (clients send 'Authorization: Bearer <token>') or bind to "
            "127.0.0.1."
        )


def prepare_embeddings(settings: Settings) -> ModelExport:
    """The served embedding model's ONNX export, made once when missing (it says so)."""
    try:
        return served_export(settings, progress=lambda line: print(line, flush=True))
    except ModelNotServable as exc:
        raise StartupError(f"the embeddings cannot start: {exc}") from None


# prepare's steps, imported on the database's thread: imported before, its libraries (a fifth
# of a second of a core) would delay the bridge's first answer (benchmarks/wake.py).
def prepare_database(settings: Settings, dimensions: int) -> Any:
    from serve_app.startup.prepare import prepare_database as prepare

    return prepare(settings, dimensions)


def prepare_ocr(config: Any, settings: Settings) -> None:
    from serve_app.startup.prepare import prepare_ocr as prepare

    prepare(config, settings)


def new_head(settings: Settings, head_node: bool) -> LocalRayHead:
    """A Ray head private to this machine, or with ``head_node`` one that worker nodes can
    join (fixed ports, the private address)."""
    if head_node:
        return LocalRayHead(node_ip(settings), settings.ray_num_cpus, settings=settings)
    return LocalRayHead()


def start_bridge(
    settings: Settings, host: str, port: int, early: BridgeProcess | None = None
) -> BridgeProcess | None:
    """The bridge on the public port while Ray and Serve start, when SERVE_APP_BRIDGE allows and
    HAProxy shares the port with it; ``early``: the one spawned before the settings were read."""
    if not settings.bridge or settings.proxy != "haproxy":
        if early is not None:
            early.stop()
        return None
    bridge = early or BridgeProcess(host, port)
    try:
        if early is None:
            bridge.spawn()
        try:
            bridge.wait_listening()
        except PortInUse:
            # an HAProxy left by a crash holds the port: stopped, then the bridge again
            if not stop_orphaned_haproxy(port):
                raise
            print(f"stopped an orphaned HAProxy on port {port}", flush=True)
            bridge = BridgeProcess(host, port)
            bridge.start()
    except PortInUse as exc:
        raise StartupError(str(exc)) from None
    except RuntimeError as exc:  # this kernel cannot steer the port: start without it
        print(f"serve-app: no bridge ({exc}); the port answers once Serve is ready", flush=True)
        return None
    return bridge


def in_thread(fn: Any, *args: Any) -> Future[Any]:
    """``fn(*args)`` on a (daemon) thread of its own; the future holds what it returned or
    raised."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


class Elapsed:
    """Seconds since it was made, for the progress lines."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


@dataclass(frozen=True)
class RunOptions:
    """``serve-app run``'s options; None: the setting's value."""

    config: str | None = None
    host: str | None = None
    port: int | None = None
    ready_timeout: float = 900
    drain_timeout: float = 30
    head: bool = False
    early_bridge: BridgeProcess | None = None  # spawned by serve-app before its imports


def run_server(args: RunOptions) -> int:
    """Serve until SIGINT/SIGTERM; 0 when stopped, a StartupError for what the operator can
    fix."""
    elapsed = Elapsed()
    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    check_bind(host, settings)
    listen = bind_host(host, settings.proxy)
    stop = threading.Event()
    draining = "\nreceived {}; draining and shutting down ..."
    stop_on_signals(stop, draining)  # a signal while starting stops the start, and what it started
    # Before Ray is imported (read once): else a Serve thread left after ray.shutdown() would
    # connect again while the head stops, and crash the process.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    tune_allocator()  # before the bridge, PostgreSQL and Ray start: they inherit it
    # replicas run in other working directories; Ray's workers inherit this environment
    os.environ["SERVE_APP_DATA_DIR"] = str(settings.data_dir.resolve())
    head = bridge = None
    for pid in stop_orphaned_haproxy(port):
        print(f"stopped an orphaned HAProxy on port {port} (pid {pid})", flush=True)
    name = args.config or settings.config
    _, raw = read_config(Path(name))  # YAML only: Ray's schema checks it below
    # before anything listens: the first start on a machine exports the model once
    model = prepare_embeddings(settings) if serves_embeddings(raw) else None
    if not os.environ.get("RAY_ADDRESS"):
        # First: the port answers embeddings while everything below starts.
        bridge = start_bridge(settings, listen, port, args.early_bridge)
    if bridge is not None:
        why = bridge_unsuitable(raw)
        if why:
            print(f"serve-app: the bridge stops: {why}", flush=True)
            bridge.stop()
            bridge = None
        else:
            bridge.configure(bridge_components(raw), uses_store(raw))
    # The database starts while the bridge loads its model (its /health needs the store)
    database = (
        in_thread(prepare_database, settings, model.dimensions)
        if model and uses_store(raw)
        else None
    )
    embedded = None
    try:
        if bridge is not None:
            # Ray waits for the bridge's model, not to share the cores with it (docs/benchmarks.md)
            bridge.wait_loaded(timeout_s=60)
        if stop.is_set():
            raise StoppedWhileStarting
        if not os.environ.get("RAY_ADDRESS"):
            # Before Ray is imported: Ray reads its auth mode once per process.
            use_cluster_token(settings)
            configure_proxy(settings.proxy, share_port=bridge is not None)
            head = new_head(settings, args.head)
            head.launch()  # `ray start` runs while the config is read
        config = load_config(Path(name), listen, port)
        if head is not None:  # a node of our own: its CPUs are known
            from ray._private.utils import get_num_cpus

            fitted = fit_cpus(config, settings.ray_num_cpus or get_num_cpus())
            if fitted:
                print(f"serve-app: {fitted}", flush=True)
        prepare_ocr(config, settings)
        embedded = database.result() if database is not None else None
        if embedded is not None:
            embedded.supervise()  # restarted if it dies; stopped after Serve below
        if head is not None:
            address = head.wait(stop=stop)  # None: a signal came, the head stops below
            if address is None:
                raise StoppedWhileStarting
            print(f"Ray head started ({elapsed}); deploying {name} ...", flush=True)
            if args.head:
                print(f"Ray head at {address}: add nodes with `serve-app join {address}`")
        else:
            address = os.environ["RAY_ADDRESS"]
            print(f"joining the Ray cluster at {address}; deploying {name} ...", flush=True)
        connect_ray(address)
        # ray.init installs handlers of its own (SIGTERM would abort this process): ours again
        stop_on_signals(stop, draining)
    except BaseException as exc:
        if bridge is not None:
            bridge.stop()
        if head is not None:
            head.stop()
        if embedded is None and database is not None:  # its start may still be under way
            embedded = database.result() if database.exception() is None else None
        if embedded is not None:
            embedded.stop()
        if isinstance(exc, StoppedWhileStarting):
            print(f"stopping while starting ({elapsed}): stopped what had started", flush=True)
            return 0
        raise
    try:
        if not stop.is_set():  # (a signal while Ray started: nothing to deploy)
            deploy(config)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]", "0::0") else host
        url = f"http://{join_host_port(shown, port)}"
        names = [app.name for app in config.applications]
        if bridge is not None:  # Serve answers behind the bridge: the port goes to it
            behind = fallback_url(listen)
            if wait_ready(behind, args.ready_timeout, stop=stop, app_names=names) is not None:
                if bridge.handover(behind, timeout_s=settings.request_timeout_s + 60):
                    bridge = None
                else:  # the bridge stays in front of Serve, stopped with it below
                    print("serve-app: the bridge keeps the port (see above)", flush=True)
        health = wait_ready(url, args.ready_timeout, stop=stop, app_names=names)
        if health is None:
            print(f"stopping while starting ({elapsed})", flush=True)
        else:
            print(f"ready in {elapsed}: {url}  (status: {health['status']})", flush=True)
            stop.wait()
    finally:
        stopping = Elapsed()
        if bridge is not None:  # stopped while Serve was starting
            bridge.stop()
        try:
            drain(config, args.drain_timeout)
            if head is None:
                # Someone else's cluster (RAY_ADDRESS): take our applications down, leave it.
                shutdown_serve(timeout_s=60)
            else:
                # Our own head, drained: stopping it ends Serve at once; serve.shutdown() would
                # take 35 s more (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S).
                disconnect_ray()
        finally:  # whatever failed above, the processes this command started stop
            if head is not None:
                head.stop()
                for pid in stop_orphaned_haproxy(port):
                    print(f"stopped orphaned HAProxy (pid {pid})", flush=True)
            if embedded is not None:
                embedded.stop()
                print("stopped the embedded PostgreSQL", flush=True)
            print(f"stopped ({stopping} after the signal)", flush=True)
    return 0
