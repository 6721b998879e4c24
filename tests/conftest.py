"""One Ray cluster and one running Serve app (real HTTP) per test session."""

from __future__ import annotations

import os
import socket
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
        "SERVE_APP_DATA_DIR": str(ROOT / ".data" / "test"),
        "RAY_SERVE_LOG_TO_STDERR": "0",
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeServer:
    """The session's running server: base URL, token, and the config it was deployed from."""

    def __init__(self, url: str, port: int, config: object):
        self.url = url
        self.port = port
        self.config = config
        self.token = TOKEN
        self.headers = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def serve_server() -> Iterator[ServeServer]:
    import ray
    from ray import serve

    from serve_app.cli import SERVE_NAMESPACE, deploy, load_config, wait_ready

    port = free_port()
    config = load_config(ROOT / "deployments" / "local.yaml", "127.0.0.1", port)
    ray.init(
        namespace=SERVE_NAMESPACE,
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
    )
    try:
        deploy(config)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout_s=300, quiet=True)
        yield ServeServer(url, port, config)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def embedding_runtime():
    from serve_app.embeddings.runtime import EmbeddingRuntime

    return EmbeddingRuntime()
