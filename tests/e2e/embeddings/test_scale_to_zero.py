"""A model deployment scaled to zero replicas (as gpu.yaml's OCR and solver do when idle):
health stays ready, and the next request cold-starts a replica and is answered."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from serve_app.app import only_models
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


def zero_app_config(port: int) -> dict:
    """deployments/local.yaml with embeddings that scale to zero, as a second app under /zero,
    with short delays."""
    raw = yaml.safe_load((ROOT / "deployments" / "local.yaml").read_text())
    app = raw["applications"][0]
    app["name"], app["route_prefix"] = "zero", "/zero"
    only_models(app, ["embeddings"])  # OCR and the solver are not under test here
    for deployment in app["deployments"]:
        deployment["ray_actor_options"]["num_cpus"] = 0.1
        if deployment["name"] == "embeddings":
            deployment["autoscaling_config"].update(
                min_replicas=0, downscale_delay_s=1, downscale_to_zero_delay_s=2, initial_replicas=1
            )
    return app


def test_scale_to_zero_then_cold_start(serve_server, embedding_runtime):
    from ray.serve.schema import ServeDeploySchema

    from serve_app.startup.serve_control import deploy

    base = serve_server.config.model_dump(exclude_unset=True)
    combined = ServeDeploySchema.model_validate(
        {**base, "applications": [*base["applications"], zero_app_config(serve_server.port)]}
    )
    url = f"{serve_server.url}/zero"
    deploy(combined)
    try:

        def embeddings_status() -> str | None:
            try:
                response = httpx.get(f"{url}/health", timeout=10)
            except httpx.HTTPError:
                return None
            json_body = response.headers.get("content-type", "").startswith("application/json")
            # (before the app's route exists the proxy answers 503 in its own words)
            body = response.json() if json_body and response.status_code in (200, 503) else {}
            status = body.get("components", {}).get("embeddings", {}).get("status")
            if status == "scaled_to_zero":
                assert response.status_code == 200, "scaled_to_zero must not fail readiness"
            return status

        wait_for(lambda: embeddings_status() == "ready", 180, "the zero app to be ready")
        wait_for(lambda: embeddings_status() == "scaled_to_zero", 120, "scale down to zero")

        started = time.perf_counter()
        response = httpx.post(
            f"{url}/v1/embeddings",
            json={"input": "cold start"},
            headers=serve_server.headers,
            timeout=120,
        )
        cold_s = time.perf_counter() - started
        assert response.status_code == 200, response.text
        vector = np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)
        expected = embedding_runtime.embed(["cold start"]).vectors[0]
        assert float(vector @ expected) > 0.9999
        print(f"cold start (0 -> 1 replica, first request): {cold_s:.2f} s")
        wait_for(lambda: embeddings_status() == "ready", 60, "the woken replica")
    finally:
        deploy(serve_server.config)  # removes the zero app again
