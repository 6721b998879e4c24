"""Serve config files (``serve deploy`` format) as ``serve-app`` reads and adapts them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from serve_app import MODELS
from serve_app.startup import StartupError

ROOT = Path(__file__).resolve().parent.parent.parent


def read_config(path: Path) -> tuple[Path, dict[str, Any]]:
    """A `serve deploy` config file as YAML gives it, without Ray (cheap: ``serve-app run``
    reads it before Ray starts), and where it was found."""
    if not path.is_file() and not path.is_absolute():
        # Fall back to the project's own deployments/ folder when run from elsewhere.
        bundled = ROOT / path
        path = bundled if bundled.is_file() else path
    if not path.is_file():
        raise StartupError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StartupError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise StartupError(f"{path} is not a Serve config (a mapping with applications)")
    return path, raw


def load_config(path: Path, host: str, port: int) -> Any:
    """Read a `serve deploy` config file and point its HTTP options at host:port."""
    from ray.serve.schema import ServeDeploySchema

    path, raw = read_config(path)
    raw.setdefault("http_options", {}).update(host=host, port=port)
    try:
        return ServeDeploySchema.model_validate(raw)
    except Exception as exc:
        raise StartupError(f"{path} is not a valid Serve config: {exc}") from exc


def fit_cpus(config: Any, cpus: float) -> str | None:
    """Shrink every deployment's ``num_cpus`` by one factor when one replica of each would not
    fit in ``cpus`` (else Serve leaves some pending and /health says "starting" for ever);
    what was done, or None when the config fits."""
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


def _apps(raw: dict[str, Any]) -> list[dict[str, Any]]:
    apps = raw.get("applications") or []
    return [app for app in apps if isinstance(app, dict)]


def _models(app: dict[str, Any]) -> list[str]:
    return list((app.get("args") or {}).get("models", MODELS))


def serves_embeddings(raw: dict[str, Any]) -> bool:
    """Whether any application of the config serves the embeddings model."""
    return any("embeddings" in _models(app) for app in _apps(raw))


def uses_store(raw: dict[str, Any]) -> bool:
    """Whether any application of the config serves the document store."""
    return any(
        "embeddings" in _models(app) and (app.get("args") or {}).get("store", True)
        for app in _apps(raw)
    )


def bridge_unsuitable(raw: dict[str, Any]) -> str | None:
    """Why the bridge (serve_app/startup/bridge/) cannot stand in for this config while Serve
    starts, or None: it serves one application at ``/`` whose models include embeddings."""
    apps = _apps(raw)
    if len(apps) != 1:
        return f"the config has {len(apps)} applications"
    prefix = apps[0].get("route_prefix") or "/"
    if prefix != "/":
        return f"the application is served at {prefix}, not /"
    if "embeddings" not in _models(apps[0]):
        return "the application serves no embeddings"
    return None


def bridge_components(raw: dict[str, Any]) -> list[str]:
    """The models of the config besides embeddings: while the bridge answers, /health says
    each is at zero replicas and that a request to it waits for Serve."""
    return [m for m in _models(_apps(raw)[0]) if m != "embeddings"]
