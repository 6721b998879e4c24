"""One Ray cluster and one running Serve app (real HTTP) per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789"

# Set before Ray starts so every replica process inherits them.
os.environ.update(
    {
        "SERVE_APP_API_TOKEN": TOKEN,
        "SERVE_APP_EMBEDDINGS_MAX_INPUTS": "64",
        "SERVE_APP_OCR_ALLOW_RANDOM_WEIGHTS": "true",  # no docTR weights offline
        "SERVE_APP_STORE_MAX_DOCUMENTS": "100",
        "SERVE_APP_DATA_DIR": str(ROOT / ".data" / "test"),
        "RAY_SERVE_LOG_TO_STDERR": "0",
    }
)


def _prepare_ray_env() -> None:
    """Token auth and the default proxy, as `serve-app run` sets them; Ray reads these once
    per process, so this runs before any test module imports Ray."""
    from serve_app.cluster import use_token_auth
    from serve_app.proxy import configure_proxy
    from serve_app.settings import Settings

    settings = Settings()
    use_token_auth(settings.data_dir / "ray_auth_token")
    configure_proxy(settings.proxy)


_prepare_ray_env()


class ServeServer:
    """The session's running server: base URL, token, and the config it was deployed from."""

    def __init__(
        self, url: str, port: int, config: object, ray_address: str, postgres: object, sid: int
    ):
        self.url = url
        self.head_sid = sid  # the process session of the Ray head's daemons
        self.postgres = postgres  # the session's EmbeddedPostgres (tests stop and kill it)
        self.ray_address = ray_address
        self.port = port
        self.config = config
        self.token = TOKEN
        self.headers = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def serve_server() -> Iterator[ServeServer]:
    import ray
    from ray import serve

    from serve_app.cluster import SERVE_NAMESPACE, LocalRayHead
    from serve_app.embeddings.model_files import served_export
    from serve_app.net import free_port
    from serve_app.settings import Settings
    from serve_app.startup.config import load_config
    from serve_app.startup.prepare import prepare_database
    from serve_app.startup.serve_control import deploy, wait_ready

    # The same path as `serve-app run`: the model's ONNX export (made once), the embedded
    # PostgreSQL (real, with pgvector) for its vectors, then a Ray head of our own in its own
    # session. Not supervised: tests stop and kill it.
    model = served_export(Settings())
    postgres = prepare_database(Settings(), model.dimensions)
    head = LocalRayHead(num_cpus=2)
    address = head.start()

    port = free_port()
    config = load_config(ROOT / "deployments" / "local.yaml", "127.0.0.1", port)
    ray.init(address=address, namespace=SERVE_NAMESPACE, log_to_driver=False)
    try:
        deploy(config)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout_s=300, quiet=True)
        yield ServeServer(url, port, config, address, postgres, head.pgid)
    finally:
        try:
            serve.shutdown()
            ray.shutdown()
        finally:
            head.stop()
            if postgres is not None:
                postgres.stop()


@pytest.fixture(scope="session")
def embedding_runtime():
    from serve_app.embeddings.runtime import EmbeddingRuntime

    return EmbeddingRuntime()
