"""``serve-app join``: this machine as a Ray worker node of a head's cluster
(``serve-app run --head``)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from serve_app.cli.errors import CliError
from serve_app.cluster import RayWorker, node_ip, tune_allocator, use_cluster_token
from serve_app.net import resolve_address
from serve_app.settings import get_settings
from serve_app.startup import stop_on_signals


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
        settings=settings,
    )
    stopping = threading.Event()
    stop_on_signals(stopping, "received {}; leaving the cluster ...")
    print(f"joining the Ray cluster at {address} as {worker.node_ip} ...", flush=True)
    proc = worker.start()
    while proc.poll() is None and not stopping.is_set():
        stopping.wait(0.5)
    worker.stop()  # also the node's other daemons, if `ray start` exited first
    if stopping.is_set():
        print("left the cluster", flush=True)
        return 0
    raise CliError(f"the Ray worker node stopped (exit {proc.returncode}); is the head up?")


def add_parser(sub: Any) -> None:
    join = sub.add_parser(
        "join", help="run this machine as a Ray worker node of a head (`serve-app run --head`)"
    )
    join.add_argument(
        "address", nargs="?", help="the head's HOST:PORT (default: SERVE_APP_RAY_HEAD_ADDRESS)"
    )
    join.set_defaults(func=cmd_join)
