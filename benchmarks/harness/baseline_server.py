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


class SentenceTransformersRuntime:
    """What a user would most likely write instead: sentence-transformers (on transformers)
    on the same weights, with the same output (``python -m benchmarks.harness.baseline_server
    --runtime sentence-transformers``; the wake benchmark's second plain process)."""

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        from serve_app.embeddings.runtime import EmbeddingOutput, default_model_dir

        self.output = EmbeddingOutput
        self.model = SentenceTransformer(
            str(default_model_dir()), device="cpu", local_files_only=True
        )

    def embed(self, texts: list[str]):
        vectors = self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        counts = [len(ids) for ids in self.model.tokenizer(texts)["input_ids"]]
        return self.output(vectors, counts)


RUNTIMES = {"serve-app": EmbeddingRuntime, "sentence-transformers": SentenceTransformersRuntime}


def create_app(runtime_name: str = "serve-app") -> FastAPI:
    runtime = RUNTIMES[runtime_name]()
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


def run_baseline(
    create: Callable[..., FastAPI], default_port: int, runtimes: list[str] | None = None
) -> None:
    """Serve a baseline app on loopback (``--port``), as both baseline servers do; with
    ``runtimes``, ``--runtime`` chooses the one ``create`` gets."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=default_port)
    if runtimes:
        parser.add_argument("--runtime", choices=runtimes, default=runtimes[0])
    args = parser.parse_args()
    app = create(args.runtime) if runtimes else create()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def main() -> None:
    run_baseline(create_app, 8100, list(RUNTIMES))


if __name__ == "__main__":
    main()
