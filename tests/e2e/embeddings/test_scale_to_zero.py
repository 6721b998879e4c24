"""Embeddings scaled to zero replicas: health stays ready, the next request cold-starts, in
the standby worker the replica before it asked for (serve_app/prestart.py)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import psutil
import pytest
import yaml

from serve_app import prestart
from serve_app.app import only_models
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


def zero_app_config(port: int) -> dict:
    """deployments/local-scale-to-zero.yaml as a second app under /zero, with short delays."""
    raw = yaml.safe_load((ROOT / "deployments" / "local-scale-to-zero.yaml").read_text())
    app = raw["applications"][0]
    app["name"], app["route_prefix"] = "zero", "/zero"
    only_models(app, ["embeddings"])  # OCR and the solver are not under test here
    for deployment in app["deployments"]:
        deployment["ray_actor_options"]["num_cpus"] = 0.1
        if deployment["name"] == "embeddings":
            assert deployment["autoscaling_config"]["min_replicas"] == 0
            deployment["autoscaling_config"].update(
                downscale_delay_s=1, downscale_to_zero_delay_s=2, initial_replicas=1
            )
    return app


def standby_workers() -> list[int]:
    """The idle standby workers of an embeddings deployment that scales to zero."""
    return [pid for pid in psutil.pids() if prestart.is_standby(pid, "embeddings")]


def test_scale_to_zero_then_cold_start(serve_server, embedding_runtime):
    from ray.serve.schema import ServeDeploySchema

    from serve_app.cli.run import deploy

    base = serve_server.config.model_dump(exclude_unset=True)
    combined = ServeDeploySchema.model_validate(
        {**base, "applications": [*base["applications"], zero_app_config(serve_server.port)]}
    )
    # its workers run as `serve-app run` runs them (the session's app is left as deployed)
    prestart.mark(SimpleNamespace(applications=combined.applications[-1:]))
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
        # the first replica asked its raylet for a standby: a process waits, with no model
        wait_for(lambda: len(standby_workers()) == 1, 60, "a standby worker")

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
        # the woken standby answered (below), maybe before Serve marked its replica running;
        # the call that woke it still waits in Serve, so Serve adds that replica
        wait_for(lambda: embeddings_status() == "ready", 60, "the woken replica")
        # Ray leased the woken replica the standby (same runtime env), which had started and
        # imported Ray Serve and the deployment's code, and which the request woke: it was
        # loading the model while Serve's controller added the replica
        info = httpx.get(f"{url}/health", timeout=10).json()["components"]["embeddings"]
        assert info["preload"] == "standby worker (woken by the first request)", info
        # and answered that request itself, once its model had loaded, before Serve had
        # marked the replica running (serve_app/standby_answer.py)
        assert info["standby_answers"] == 1, info
        # and it asked for the next one
        wait_for(lambda: len(standby_workers()) == 1, 60, "the next standby worker")
    finally:
        deploy(serve_server.config)  # removes the zero app again
        for pid in standby_workers():  # its standby would wait for a deployment now gone
            psutil.Process(pid).kill()
