"""``serve-app``: run the server, show its status."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError

from serve_app.cluster import (
    SERVE_NAMESPACE,
    LocalRayHead,
    RayPorts,
    RayWorker,
    configure_proxy,
    resolve_address,
    stop_orphaned_haproxy,
    use_token_auth,
)
from serve_app.settings import Settings, get_settings, is_loopback, secret_value
from serve_app.store.embedded import EmbeddedPostgres, pgdata_dir


class CliError(Exception):
    """A problem the operator can fix; printed without a traceback."""


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


def load_config(path: Path, host: str, port: int) -> Any:
    """Read a `serve deploy` config file and point its HTTP options at host:port."""
    from ray.serve.schema import ServeDeploySchema

    if not path.is_file() and not path.is_absolute():
        # Fall back to the project's own deployments/ folder when run from elsewhere.
        bundled = Path(__file__).resolve().parent.parent / path
        path = bundled if bundled.is_file() else path
    if not path.is_file():
        raise CliError(f"config file {path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    raw.setdefault("http_options", {})
    raw["http_options"]["host"] = host
    raw["http_options"]["port"] = port
    try:
        return ServeDeploySchema.model_validate(raw)
    except Exception as exc:
        raise CliError(f"{path} is not a valid Serve config: {exc}") from exc


def fit_cpus(config: Any, cpus: float) -> str | None:
    """Shrink every deployment's ``num_cpus`` by one factor when one replica of each would
    not fit in ``cpus`` (a config made for a larger machine: fly.yaml asks for 4 cores).
    Without it Serve leaves the replicas that do not fit pending and /health says "starting"
    for ever. The replicas' torch threads still use every core. Returns what was done, or
    None when the config fits."""
    from ray.serve.schema import RayActorOptionsSchema

    deployments = [d for app in config.applications for d in app.deployments]
    wanted = {}
    for d in deployments:
        options = d.ray_actor_options
        wanted[d.name] = float(options.num_cpus if options and options.num_cpus else 1.0)
    total = sum(wanted.values())
    if total <= cpus:
        return None
    factor = cpus / total
    for d in deployments:
        share = math.floor(wanted[d.name] * factor * 1000) / 1000  # never round above cpus
        if d.ray_actor_options is None:
            d.ray_actor_options = RayActorOptionsSchema(num_cpus=share)
        else:
            d.ray_actor_options.num_cpus = share
    asked = ", ".join(f"{name} {n:g}" for name, n in wanted.items())
    return (
        f"the config asks for {total:g} CPUs for one replica of each deployment ({asked}) and "
        f"this node has {cpus:g}: every num_cpus fitted by {factor:.2f}, so all of them can "
        "start (they share the cores; use a config made for this machine, e.g. "
        "deployments/local.yaml, for the best throughput)"
    )


def bind_host(host: str, settings: Settings) -> str:
    """The listen address as Serve's proxy needs it. Serve turns "::" into HAProxy's "*",
    which is IPv4 only; "0::0" (the same address, spelled so that Serve passes it through)
    makes HAProxy and the Python proxy behind it listen on IPv4 and IPv6: Fly's proxy
    connects over IPv4, 6PN traffic is IPv6."""
    if settings.proxy == "haproxy" and host in ("::", "[::]"):
        return "0::0"
    return host


def check_ocr_weights(config: Any, settings: Settings) -> None:
    """Fetch missing OCR weights when asked to (``make run``), then, with
    SERVE_APP_OCR_REQUIRE_WEIGHTS, refuse to start when they are still missing: a failed deploy
    beats a silently blind OCR."""
    from serve_app.ocr.runtime import missing_weights
    from serve_app.ocr.weights import configured_architectures, ensure_weights

    if not (settings.ocr_download_missing or settings.ocr_require_weights):
        return
    pairs = configured_architectures(config)
    weights_dir = settings.ocr_weights_path()
    try:
        missing = [m for det, reco in pairs for m in missing_weights(weights_dir, det, reco)]
    except ValueError as exc:  # unknown architecture in the config
        raise CliError(str(exc)) from None
    if missing and settings.ocr_download_missing:
        print(f"OCR weights missing; downloading them once into {weights_dir} ...", flush=True)
        ensure_weights(weights_dir, pairs, settings.ocr_weights_mirror)
        missing = [m for det, reco in pairs for m in missing_weights(weights_dir, det, reco)]
    if missing and settings.ocr_require_weights:
        raise CliError(
            "OCR weights are required (SERVE_APP_OCR_REQUIRE_WEIGHTS) but missing: "
            + ", ".join(missing)
            + ". Run `serve-app weights download` (the image build does) or unset it."
        )


def cmd_weights_download(args: argparse.Namespace) -> int:
    """Fetch the configured docTR weights (the image build runs this; needs the network)."""
    from serve_app.ocr.weights import WeightsError, configured_architectures, download

    settings = get_settings()
    if args.det_arch or args.reco_arch:
        from serve_app.ocr.runtime import DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH

        pairs = [(args.det_arch or DEFAULT_DET_ARCH, args.reco_arch or DEFAULT_RECO_ARCH)]
    else:
        configs = args.config or [settings.config]
        pairs = []
        for path in configs:
            for pair in configured_architectures(load_config(Path(path), "127.0.0.1", 8000)):
                if pair not in pairs:
                    pairs.append(pair)
    weights_dir = Path(args.dir) if args.dir else settings.ocr_weights_path()
    try:
        saved = download(weights_dir, pairs, args.mirror or settings.ocr_weights_mirror)
    except (httpx.HTTPError, WeightsError, OSError) as exc:
        raise CliError(f"weights download failed: {exc}") from None
    except ValueError as exc:  # unknown architecture
        raise CliError(str(exc)) from None
    print(f"{len(saved)} weights files in {weights_dir}", flush=True)
    return 0


def uses_store(config: Any) -> bool:
    """Whether any application of the config serves the document store."""
    return any(
        "embeddings" in (app.args or {}).get("models", ["embeddings"])
        and (app.args or {}).get("store", True)
        for app in config.applications
    )


def prepare_database(settings: Settings, start_embedded: bool = True) -> EmbeddedPostgres | None:
    """Start the embedded PostgreSQL when no DATABASE_URL is set, then apply migrations and
    check pgvector; returns the embedded server (None with DATABASE_URL)."""
    import asyncpg

    from serve_app.store.db import CONNECTION_ERRORS, IndexParams, StoreUnavailable, migrate

    embedded = None
    if settings.database_url:
        dsn, where = settings.database_url, "DATABASE_URL"
    else:
        embedded = EmbeddedPostgres(pgdata_dir(settings.data_dir))
        if not start_embedded and not embedded.running():
            raise CliError(f"the embedded PostgreSQL in {embedded.pgdata} is not running")
        print(f"starting the embedded PostgreSQL in {embedded.pgdata} ...", flush=True)
        dsn, where = embedded.start(), f"embedded PostgreSQL ({embedded.pgdata})"

    async def run() -> tuple[list[str], str]:
        from serve_app.store.db import check_pgvector

        conn = await asyncpg.connect(dsn, timeout=settings.store_connect_timeout_s)
        try:
            index = IndexParams(settings.store_hnsw_m, settings.store_hnsw_ef_construction)
            applied = await migrate(conn, index, progress=lambda m: print(m, flush=True))
            return applied, await check_pgvector(conn)
        finally:
            await conn.close()

    try:
        try:
            applied, version = asyncio.run(run())
        except StoreUnavailable as exc:
            fix = f". Fix: {exc.fix}" if exc.fix else ""
            raise CliError(f"{where}: {exc.reason}{fix}") from None
        except CONNECTION_ERRORS as exc:
            raise CliError(f"cannot reach {where}: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise CliError(f"{where}: migrating failed: {exc}") from None
    except CliError:
        if embedded is not None:
            embedded.stop()
        raise
    done = f"applied {', '.join(applied)}" if applied else "schema up to date"
    print(f"database ready: {where}, pgvector {version}, {done}", flush=True)
    return embedded


def cmd_db(args: argparse.Namespace) -> int:
    """`db migrate` / `db start` / `db stop` for the configured database."""
    settings = get_settings()
    if args.db_command == "stop":
        if settings.database_url:
            raise CliError("DATABASE_URL is set: that server is not ours to stop")
        EmbeddedPostgres(pgdata_dir(settings.data_dir)).stop()
        print("embedded PostgreSQL stopped", flush=True)
        return 0
    embedded = EmbeddedPostgres(pgdata_dir(settings.data_dir))
    was_running = settings.database_url is None and embedded.running()
    embedded = prepare_database(settings)
    if embedded is not None and args.db_command == "start":
        from serve_app.store.embedded import socket_uri

        print(f"embedded PostgreSQL running: {socket_uri(embedded.pgdata)}", flush=True)
    elif embedded is not None and not was_running:
        embedded.stop()  # `db migrate` leaves the server as it found it
    return 0


def node_ip(settings: Settings) -> str:
    """This node's address for other nodes: SERVE_APP_NODE_IP / FLY_PRIVATE_IP (6PN, IPv6),
    else the address Ray itself would pick."""
    if settings.node_ip:
        return settings.node_ip
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def start_ray(settings: Settings, head_node: bool = False) -> LocalRayHead | None:
    """Join RAY_ADDRESS when set, else start a Ray head: private to this machine, or with
    ``head_node`` one that worker nodes can join. Returns the head we started."""
    import ray

    address = os.environ.get("RAY_ADDRESS")
    head = None
    if not address:
        if head_node:
            ip, ports = node_ip(settings), RayPorts.from_settings(settings)
            head = LocalRayHead(node_ip=ip, num_cpus=settings.ray_num_cpus, ports=ports)
        else:
            head = LocalRayHead()
        address = head.start()
        if head_node:
            print(f"Ray head at {address}: add nodes with `serve-app join {address}`", flush=True)
    ray.init(
        address=address,
        namespace=SERVE_NAMESPACE,
        log_to_driver=True,
        configure_logging=True,
        logging_level="WARNING",
    )
    return head


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
) -> dict[str, Any]:
    """Poll /health until 200; print component states as they change. Gives up when ``stop``
    is set (Ctrl-C while starting) or Serve reports a failed deployment."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise CliError("interrupted while starting")
        failure = deploy_failure(app_names) if app_names else None
        if failure:
            raise CliError(failure)
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
    raise CliError(f"server not ready after {timeout_s:.0f} s ({last})")


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
                # This driver thread has no event loop: the handle's router needs its own
                # (with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 in the environment, handles expect one).
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
    """serve.shutdown() with a deadline. With the HAProxy ingress it takes about 30 s: the
    replica's HTTP server waits for HAProxy's idle keep-alive connections until Serve's
    30 s shutdown tier timeout. Requests are drained already, so nothing is lost."""
    import ray
    from ray import serve

    worker = threading.Thread(target=serve.shutdown, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        print(f"serve.shutdown() still running after {timeout_s:.0f} s; stopping Ray", flush=True)
        return
    ray.shutdown()


def cmd_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    check_bind(host, settings)
    # Before Ray is imported (it reads this once): this process connects to Ray explicitly.
    # Without it, a Serve thread still running after ray.shutdown() (a router's long poll)
    # would silently connect again while the head is being stopped, and crash the process.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    if not os.environ.get("RAY_ADDRESS"):
        # Before Ray is imported: Ray reads its auth mode once per process.
        use_cluster_token(settings)
        configure_proxy(settings.proxy)
    config = load_config(Path(args.config or settings.config), bind_host(host, settings), port)
    if not os.environ.get("RAY_ADDRESS"):  # a node of our own: its CPUs are known
        from ray._private.utils import get_num_cpus

        fitted = fit_cpus(config, settings.ray_num_cpus or get_num_cpus())
        if fitted:
            print(f"serve-app: {fitted}", flush=True)
    check_ocr_weights(config, settings)
    # Replicas run in other working directories: give them the data directory's full path.
    os.environ["SERVE_APP_DATA_DIR"] = str(settings.data_dir.resolve())
    started = time.monotonic()
    embedded = prepare_database(settings) if uses_store(config) else None
    if embedded is not None:
        embedded.supervise()  # restarted if it dies; stopped after Serve below
    print(f"starting Ray and deploying {args.config or settings.config} ...", flush=True)
    for pid in stop_orphaned_haproxy(port):
        print(f"stopped an orphaned HAProxy on port {port} (pid {pid})", flush=True)
    try:
        head = start_ray(settings, head_node=args.head)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        print(
            f"\nreceived {signal.Signals(signum).name}; draining and shutting down ...", flush=True
        )
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        deploy(config)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]", "0::0") else host
        url = f"http://{shown}:{port}" if ":" not in shown else f"http://[{shown}]:{port}"
        names = [app.name for app in config.applications]
        health = wait_ready(url, args.ready_timeout, stop=stop, app_names=names)
        ready_s = time.monotonic() - started
        print(f"ready in {ready_s:.1f} s: {url}  (status: {health['status']})", flush=True)
        stop.wait()
    finally:
        try:
            drain(config, args.drain_timeout)
            shutdown_serve(timeout_s=60)
        finally:  # whatever failed above, the processes this command started stop
            if head is not None:
                head.stop()
                for pid in stop_orphaned_haproxy(port):
                    print(f"stopped orphaned HAProxy (pid {pid})", flush=True)
            if embedded is not None:
                embedded.stop()
                print("stopped the embedded PostgreSQL", flush=True)
            print("stopped", flush=True)
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


def replica_nodes() -> dict[tuple[str, str], dict[str, int]]:
    """Running replicas per (application, deployment) and node (``ip/node-id``), from the
    Serve controller."""
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()
    placed: dict[tuple[str, str], dict[str, int]] = {}
    for app_name, app in (details.get("applications") or {}).items():
        for dep_name, dep in (app.get("deployments") or {}).items():
            counts = placed.setdefault((app_name, dep_name), {})
            for replica in dep.get("replicas") or []:
                if replica.get("state") == "RUNNING":
                    # the node id too: several nodes can share an IP (tests, one big host)
                    node = f"{replica.get('node_ip') or '?'}/{(replica.get('node_id') or '?')[:8]}"
                    counts[node] = counts.get(node, 0) + 1
    return placed


def cmd_status(args: argparse.Namespace) -> int:
    settings = get_settings()
    # Before Ray is imported: the cluster's token (shared secret, or this data dir's own).
    use_cluster_token(settings)
    import ray
    from ray import serve

    ray.init(
        address=os.environ.get("RAY_ADDRESS", "auto"),
        namespace=SERVE_NAMESPACE,
        logging_level="ERROR",
        log_to_driver=False,
    )
    status = serve.status()
    if not status.applications:
        print("no Serve applications running")
        return 1
    placed = replica_nodes()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    print(f"Ray nodes: {len(alive)} alive ({', '.join(n['NodeManagerAddress'] for n in alive)})")
    for app_name, app in status.applications.items():
        print(f"application {app_name}: {app.status.value}")
        for name, dep in app.deployments.items():
            replicas = ", ".join(
                f"{getattr(state, 'value', state).lower()}={n}"
                for state, n in dep.replica_states.items()
            )
            print(f"  {name:<12} {dep.status.value:<12} replicas: {replicas or 'none'}")
            nodes = placed.get((app_name, name))
            if nodes:
                where = ", ".join(f"{ip}={n}" for ip, n in sorted(nodes.items()))
                print(f"  {'':<12} on nodes: {where}")
            if dep.message:
                print(f"  {'':<12} {dep.message}")
    return 0


def cmd_fly(args: argparse.Namespace) -> int:
    """`serve-app fly ...`: the app's Fly Machines through the Machines REST API."""
    from serve_app.fly import autoscale
    from serve_app.fly.api import FlyApiError, FlyTimeout, MachinesClient
    from serve_app.fly.ops import FlyOps, OpsError, app_name, format_table

    settings = get_settings()
    token = secret_value(settings.fly_api_token)
    if not token:
        raise CliError("FLY_API_TOKEN is not set (`fly tokens create deploy` makes one)")
    try:
        app = app_name(args.app, settings.fly_app_name, Path(args.fly_toml))
        with MachinesClient(settings.fly_api_url, token, app, log=print) as client:
            ops = FlyOps(client, group=args.group, wait_timeout_s=args.wait_timeout)
            command = args.fly_command
            if command == "machines":
                machines = ops.machines(all_groups=True)
                print(format_table(machines) if machines else f"no machines in {app}")
            elif command == "scale":
                pool = ops.scale(args.count, args.region, args.fallback_region)
                print(f"{len(pool)} {args.group} machine(s) in {args.region or 'all regions'}")
            elif command == "start":
                print(f"started {ops.start_many(args.ids)} machine(s)")
            elif command == "stop":
                print(f"stopped {ops.stop_many(args.ids)} machine(s)")
            elif command == "warm":
                print(f"started {ops.warm(args.count)} machine(s)")
            elif command == "autoscale":
                policy = autoscale.Policy(
                    min_machines=args.min,
                    max_machines=args.max,
                    target_inflight=args.target_inflight,
                    down_ratio=args.down_ratio,
                    down_after_s=args.down_after,
                    cooldown_s=args.cooldown,
                )
                try:
                    autoscale.run(
                        ops,
                        policy,
                        interval_s=args.interval,
                        port=args.metrics_port or settings.port,
                        metrics_urls=args.metrics_url,
                        dry_run=args.dry_run,
                        rounds=args.rounds,
                    )
                except KeyboardInterrupt:
                    print("autoscaler stopped")
    except (OpsError, FlyApiError, FlyTimeout, ValueError) as exc:
        raise CliError(str(exc)) from None
    return 0


def fly_group_options(defaults: bool) -> argparse.ArgumentParser:
    """The options of every `serve-app fly` command. flyctl takes `-a/--app` after any
    subcommand (`fly machines list -a X`), so they are accepted before the subcommand and
    after it; after it, an option only overrides when given (SUPPRESS as its default)."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-a",
        "--app",
        default=default(None),
        help="Fly app (default: FLY_APP_NAME, else fly.toml's app)",
    )
    options.add_argument(
        "--fly-toml", default=default("fly/fly.toml"), help="fly.toml to read the app from"
    )
    options.add_argument(
        "--group",
        default=default("app"),
        help="process group to act on: app (heads) or worker",
    )
    options.add_argument(
        "--wait-timeout",
        type=float,
        default=default(180),
        help="seconds to wait for each state change",
    )
    return options


def add_fly_parser(sub: Any) -> None:
    fly = sub.add_parser(
        "fly",
        parents=[fly_group_options(defaults=True)],
        help="the app's Fly Machines (Machines REST API, FLY_API_TOKEN)",
    )
    after = fly_group_options(defaults=False)
    fly_sub = fly.add_subparsers(dest="fly_command", required=True)
    fly_sub.add_parser(
        "machines", parents=[after], help="id, state, region, size and role of every machine"
    )
    scale = fly_sub.add_parser(
        "scale", parents=[after], help="create (clone) or remove machines until --count exist"
    )
    scale.add_argument("--count", type=int, required=True)
    scale.add_argument("--region", help="count and create machines in this region only")
    scale.add_argument(
        "--fallback-region",
        action="append",
        default=[],
        help="on insufficient_capacity, try this region next (repeatable)",
    )
    for name, what in (("start", "stopped"), ("stop", "started")):
        cmd = fly_sub.add_parser(
            name, parents=[after], help=f"{name} machines (default: every {what} one)"
        )
        cmd.add_argument("ids", nargs="*", help="machine ids")
    warm = fly_sub.add_parser(
        "warm", parents=[after], help="start stopped machines ahead of expected load"
    )
    warm.add_argument("count", type=int, help="machines to have started")
    auto = fly_sub.add_parser(
        "autoscale",
        parents=[after],
        help="start/stop machines from the servers' /metrics (a control loop)",
    )
    auto.add_argument("--min", type=int, default=1, help="machines always started")
    auto.add_argument("--max", type=int, default=4, help="machines started at most")
    auto.add_argument(
        "--target-inflight",
        type=float,
        default=64,
        help="requests in flight per machine (fly.toml soft_limit is a good start)",
    )
    auto.add_argument("--down-ratio", type=float, default=0.5)
    auto.add_argument("--down-after", type=float, default=300, help="seconds of low load")
    auto.add_argument("--cooldown", type=float, default=120, help="seconds after a change")
    auto.add_argument("--interval", type=float, default=15, help="seconds between rounds")
    auto.add_argument("--rounds", type=int, help="stop after this many rounds (default: never)")
    auto.add_argument("--metrics-port", type=int, help="server port (default: SERVE_APP_PORT)")
    auto.add_argument(
        "--metrics-url",
        action="append",
        help="scrape these URLs instead of each started machine over 6PN (repeatable)",
    )
    auto.add_argument("--dry-run", action="store_true", help="print decisions; change nothing")
    fly.set_defaults(func=cmd_fly)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serve-app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
    status = sub.add_parser("status", help="replicas and state of each deployment")
    status.set_defaults(func=cmd_status)
    weights = sub.add_parser("weights", help="docTR weights for the OCR deployment")
    weights_sub = weights.add_subparsers(dest="weights_command", required=True)
    download = weights_sub.add_parser(
        "download",
        help="fetch the configured architectures' weights (the only command that uses the "
        "network; the image build runs it)",
    )
    download.add_argument(
        "--config",
        action="append",
        help="Serve config(s) whose OCR architectures to fetch (default: SERVE_APP_CONFIG); "
        "repeat for several",
    )
    download.add_argument("--det-arch", help="fetch this detection architecture instead")
    download.add_argument("--reco-arch", help="fetch this recognition architecture instead")
    download.add_argument("--dir", help="weights directory (default: SERVE_APP_OCR_WEIGHTS_DIR)")
    download.add_argument(
        "--mirror",
        help="base URL serving docTR's file names (default: SERVE_APP_OCR_WEIGHTS_MIRROR)",
    )
    download.set_defaults(func=cmd_weights_download)
    add_fly_parser(sub)
    db = sub.add_parser("db", help="the document database (PostgreSQL + pgvector)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "migrate",
        help="apply pending migrations and build the HNSW index (DATABASE_URL, else the "
        "embedded server); Fly runs it as the release command",
    ).set_defaults(func=cmd_db)
    db_sub.add_parser(
        "start", help="start the embedded PostgreSQL and leave it running (for `serve run`)"
    ).set_defaults(func=cmd_db)
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"serve-app: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        print("serve-app: invalid settings:", file=sys.stderr)
        for error in exc.errors():
            where = "".join(f"SERVE_APP_{str(part).upper()}: " for part in error["loc"])
            secret = "TOKEN" in where  # never echo a token back
            given = f" (got {error['input']!r})" if error["loc"] and not secret else ""
            print(f"  {where}{error['msg']}{given}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
