"""Baseline (b): a plain single-process FastAPI + uvicorn embeddings server.

What a user would otherwise write: the same runtime, one model call per request, no
cross-request batching, no Ray. Run: ``python -m benchmarks.harness.baseline_server --port 8100``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from serve_app.embeddings.protocol import EmbeddingRequest
from serve_app.embeddings.runtime import EmbeddingRuntime


def create_app() -> FastAPI:
    runtime = EmbeddingRuntime()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest) -> dict:
        out = runtime.embed(body.texts())
        total = sum(out.token_counts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(out.vectors)
            ],
            "model": "all-MiniLM-L6-v2",
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }

    return app


def run_baseline(create: Callable[[], FastAPI], default_port: int) -> None:
    """Serve a baseline app on loopback (``--port``), as both baseline servers do."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args()
    uvicorn.run(create(), host="127.0.0.1", port=args.port, log_level="warning")


def main() -> None:
    run_baseline(create_app, 8100)


if __name__ == "__main__":
    main()
