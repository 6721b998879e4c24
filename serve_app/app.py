"""The Serve application graph; ``serve_app.app:build_app`` is the config files' import path."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serve_app import MODELS
from serve_app.embeddings.deployment import EmbeddingDeployment
from serve_app.ingress import Ingress
from serve_app.ocr.deployment import OcrDeployment
from serve_app.solver.deployment import SolverDeployment


def only_models(app_config: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """An application entry of a config file (as parsed YAML) reduced to ``models``: its
    ``args.models`` and its deployments (the ingress and those models), changed in place."""
    app_config.setdefault("args", {})["models"] = list(models)
    keep = {"ingress", *models}
    app_config["deployments"] = [d for d in app_config["deployments"] if d["name"] in keep]
    return app_config


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Bind the ingress to the model deployments named in ``args["models"]`` (default: all);
    ``args["store"]`` (default true) serves /v1/documents and /v1/search (needs embeddings)."""
    args = args or {}
    models = tuple(args.get("models", MODELS))
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; known: {list(MODELS)}")
    deployments = {
        "embeddings": EmbeddingDeployment,
        "ocr": OcrDeployment,
        "solver": SolverDeployment,
    }
    handles = {name: d.bind() for name, d in deployments.items() if name in models}
    return Ingress.bind(**handles, store=bool(args.get("store", True)))
