"""``serve-app status``: each deployment's state and replicas, and the nodes they run on."""

from __future__ import annotations

import argparse
import os
from typing import Any

from serve_app.cluster import SERVE_NAMESPACE, use_cluster_token
from serve_app.settings import get_settings


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


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="replicas and state of each deployment")
    status.set_defaults(func=cmd_status)
