"""``serve-app run`` and ``serve-app join``: a Ray node serving the app, supervised.

``run`` starts a Ray head of its own (``ray start`` runs in the background while the config is
read and the database starts) or joins ``RAY_ADDRESS``, deploys the config through Ray's own
config path (what ``serve run config.yaml`` does), prints the URL once ``/health`` answers 200,
and on SIGINT/SIGTERM drains in-flight requests, then stops what it started. ``join`` runs
this machine as a worker node of another machine's head.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from serve_app.bridge.process import BridgeProcess
from serve_app.bridge.sockets import PortInUse, bind_host
from serve_app.cli.errors import CliError
from serve_app.cli.serve_config import (
    bridge_components,
    bridge_unsuitable,
    fit_cpus,
    load_config,
    read_config,
    serves_embeddings,
    uses_store,
)
from serve_app.cluster import (
    LocalRayHead,
    RayPorts,
    RayWorker,
    configure_proxy,
    resolve_address,
    stop_orphaned_haproxy,
    tune_allocator,
    use_token_auth,
)
from serve_app.settings import Settings, get_settings, is_loopback, secret_value
from serve_app.supervisor import (
    StoppedWhileStarting,
    connect_ray,
    deploy,
    disconnect_ray,
    drain,
    fallback_url,
    shutdown_serve,
    wait_ready,
)


def use_cluster_token(settings: Settings) -> None:
    """Ray token auth with the cluster's shared token (SERVE_APP_RAY_AUTH_TOKEN), else this
    data directory's own; before Ray is imported (it reads the auth mode once)."""
    use_token_auth(settings.data_dir / "ray_auth_token", secret_value(settings.ray_auth_token))


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without a token (API.md)."""
    if settings.api_token_value() is None and not is_loopback(host):
        raise CliError(
            f"refusing to listen on {host}: no API token is configured. Set "
            "SERVE_APP_API_TOKEN (clients send 'Authorization: Bearer <token>') or bind to "
            "127.0.0.1."
        )


def node_ip(settings: Settings) -> str:
    """This node's address for other nodes: SERVE_APP_NODE_IP / FLY_PRIVATE_IP (6PN, IPv6),
    else the address Ray itself would pick."""
    if settings.node_ip:
        return settings.node_ip
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def new_head(settings: Settings, head_node: bool) -> LocalRayHead:
    """A Ray head private to this machine, or with ``head_node`` one that worker nodes can
    join (fixed ports, the private address)."""
    if head_node:
        ports = RayPorts.from_settings(settings)
        return LocalRayHead(node_ip=node_ip(settings), num_cpus=settings.ray_num_cpus, ports=ports)
    return LocalRayHead()


def start_bridge(
    settings: Settings, host: str, port: int, early: BridgeProcess | None = None
) -> BridgeProcess | None:
    """The bridge on the public port while Ray and Serve start (serve_app/bridge/), when
    SERVE_APP_BRIDGE allows and the front door is HAProxy (it shares the port with it);
    ``early``: the one ``serve-app`` spawned before reading its settings."""
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
        raise CliError(str(exc)) from None
    except RuntimeError as exc:  # this kernel cannot steer the port: start without it
        print(f"serve-app: no bridge ({exc}); the port answers once Serve is ready", flush=True)
        return None
    return bridge


class InThread:
    """``fn(*args)`` on a thread of its own; :meth:`result` waits for it and returns what it
    returned or raises what it raised."""

    def __init__(self, fn: Any, *args: Any):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:
            self._error = exc

    def result(self, raise_error: bool = True) -> Any:
        self._thread.join()
        if self._error is not None and raise_error:
            raise self._error
        return self._value


def prepare_database(settings: Settings, dimensions: int) -> Any:
    """serve_app.cli.database's, imported when needed (its module is slow to import)."""
    from serve_app.cli.database import prepare_database as prepare

    return prepare(settings, dimensions)


def prepare_embeddings(settings: Settings) -> Any:
    """The served embedding model's ONNX export, made once when missing (it says so)."""
    from serve_app.embeddings.model_files import ModelNotServable, served_export

    try:
        return served_export(settings, progress=lambda line: print(line, flush=True))
    except ModelNotServable as exc:
        raise CliError(f"the embeddings cannot start: {exc}") from None


def prepare_ocr(config: Any, settings: Settings) -> None:
    """serve_app.cli.weights's, imported when needed."""
    from serve_app.cli.weights import prepare_ocr as prepare

    prepare(config, settings)


class Elapsed:
    """Seconds since it was made, for the progress lines."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.started

    def __str__(self) -> str:
        return f"{self():.1f} s"


def cmd_run(args: argparse.Namespace) -> int:
    elapsed = Elapsed()
    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    check_bind(host, settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        print(
            f"\nreceived {signal.Signals(signum).name}; draining and shutting down ...", flush=True
        )
        stop.set()

    def handle_signals() -> None:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    handle_signals()  # a signal while starting stops the start, and what it started
    # Before Ray is imported (it reads this once): this process connects to Ray explicitly.
    # Without it, a Serve thread still running after ray.shutdown() (a router's long poll)
    # would silently connect again while the head is being stopped, and crash the process.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    tune_allocator()  # before the bridge, PostgreSQL and Ray start: they inherit it
    # Replicas run in other working directories: give them the data directory's full path
    # (before Ray starts: its workers inherit this environment).
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
        early = getattr(args, "early_bridge", None)
        bridge = start_bridge(settings, bind_host(host, settings.proxy), port, early)
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
        InThread(prepare_database, settings, model.dimensions)
        if model and uses_store(raw)
        else None
    )
    embedded = None
    try:
        if bridge is not None:
            # Ray starts once the bridge has its model: started together, they shared the
            # two cores and the first answer took 1.7x a plain process's (docs/benchmarks.md).
            bridge.wait_loaded(timeout_s=60)
        if stop.is_set():
            raise StoppedWhileStarting
        if not os.environ.get("RAY_ADDRESS"):
            # Before Ray is imported: Ray reads its auth mode once per process.
            use_cluster_token(settings)
            configure_proxy(settings.proxy, share_port=bridge is not None)
            head = new_head(settings, args.head)
            head.launch()  # `ray start` runs while the config is read
        config = load_config(Path(name), bind_host(host, settings.proxy), port)
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
        handle_signals()
    except BaseException as exc:
        if bridge is not None:
            bridge.stop()
        if head is not None:
            head.stop()
        if embedded is None and database is not None:  # its start may still be under way
            embedded = database.result(raise_error=False)
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
        url = f"http://{shown}:{port}" if ":" not in shown else f"http://[{shown}]:{port}"
        names = [app.name for app in config.applications]
        if bridge is not None:  # Serve answers behind the bridge: the port goes to it
            behind = fallback_url(bind_host(host, settings.proxy))
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
                # Our own head: nothing is in flight any more, and Serve's state lives in
                # the head's memory. Stopping the head's processes ends everything at once;
                # serve.shutdown() would take 35 s more (Serve's HAProxy ingress waits out
                # RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S, 30 s, before it closes).
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


def cmd_join(args: argparse.Namespace) -> int:
    """Run this machine as a Ray worker node of a head's cluster until stopped; Serve places
    replicas on it. Exits when the node stops (the head went away, or SIGTERM)."""
    settings = get_settings()
    target = args.address or settings.ray_head_address
    if not target:
        raise CliError("no head address: `serve-app join HOST:PORT` or SERVE_APP_RAY_HEAD_ADDRESS")
    try:
        address = resolve_address(target)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    use_cluster_token(settings)
    tune_allocator()
    worker = RayWorker(
        address,
        node_ip=node_ip(settings),
        num_cpus=settings.ray_num_cpus,
        ports=RayPorts.from_settings(settings),
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        print(f"received {signal.Signals(signum).name}; leaving the cluster ...", flush=True)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"joining the Ray cluster at {address} as {worker.node_ip} ...", flush=True)
    proc = worker.start()
    while proc.poll() is None and not stopping.is_set():
        stopping.wait(0.5)
    if stopping.is_set():
        worker.stop()
        print("left the cluster", flush=True)
        return 0
    worker.stop()  # the node's other daemons, if `ray start` exited first
    raise CliError(f"the Ray worker node stopped (exit {proc.returncode}); is the head up?")


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="start Ray (or join RAY_ADDRESS) and serve a config")
    run.add_argument("--config", help="Serve config file (default: SERVE_APP_CONFIG)")
    run.add_argument("--host", help="listen address (default: SERVE_APP_HOST, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: SERVE_APP_PORT, 8000)")
    run.add_argument("--ready-timeout", type=float, default=900, help="seconds to wait for /health")
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=30,
        help="seconds to let in-flight requests finish on SIGTERM/Ctrl-C",
    )
    run.add_argument(
        "--head",
        action="store_true",
        help="start a Ray head that other machines join (`serve-app join`): fixed ports, "
        "listening on SERVE_APP_NODE_IP / FLY_PRIVATE_IP",
    )
    run.set_defaults(func=cmd_run)
    join = sub.add_parser(
        "join", help="run this machine as a Ray worker node of a head (`serve-app run --head`)"
    )
    join.add_argument(
        "address", nargs="?", help="the head's HOST:PORT (default: SERVE_APP_RAY_HEAD_ADDRESS)"
    )
    join.set_defaults(func=cmd_join)
