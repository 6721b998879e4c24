"""Ray Serve deployment for embeddings: cross-request batching with a token budget."""

from __future__ import annotations

import time
from typing import Any

from ray import serve

from serve_app.batching import ThreadedBatches
from serve_app.embeddings.protocol import JOB_MAX_TOKENS, EmbedJob, EmbedResult, split_by_jobs
from serve_app.settings import get_settings


def _job_tokens(jobs: list[EmbedJob]) -> int:
    return sum(job.est_tokens for job in jobs)


@serve.deployment(name="embeddings")
class EmbeddingDeployment:
    """Holds one :class:`EmbeddingRuntime`; batches jobs from concurrent requests.

    ``user_config`` keys: ``max_batch_tokens`` (estimated tokens per batch across requests),
    ``batch_wait_timeout_s``, ``forward_batch_tokens`` (padded tokens per forward pass),
    ``parallel_batches`` (batches embedded at once, each on its own thread), ``torch_threads``
    (CPU threads shared by the running batches; 0 = all cores). See :mod:`serve_app.batching`.
    """

    def __init__(self) -> None:
        # torch and transformers load here, in the replica: the app's build step imports this
        from serve_app.embeddings.runtime import EmbeddingRuntime

        settings = get_settings()
        self.runtime = EmbeddingRuntime(
            model_dir=settings.embeddings_model_dir,
            device=settings.embeddings_device,
            max_tokens=settings.embeddings_max_tokens,
        )
        self.runtime.embed(["warm up"])  # first forward pass is slow; pay it before readiness
        self._batches = ThreadedBatches(self._embed_jobs, "embeddings", size_of=_job_tokens)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply batch settings from ``user_config`` without a restart."""
        budget = int(config.get("max_batch_tokens", 16384))
        if budget < JOB_MAX_TOKENS:
            raise ValueError(f"max_batch_tokens must be >= {JOB_MAX_TOKENS}, got {budget}")
        self.runtime.max_batch_tokens = int(config.get("forward_batch_tokens", 16384))
        self._batches.configure(
            max_batch_size=budget,
            wait_s=float(config.get("batch_wait_timeout_s", 0.005)),
            parallel=int(config.get("parallel_batches", 1)),
            threads=int(config.get("torch_threads", 0)),
        )

    def _embed_jobs(self, jobs: list[EmbedJob]) -> list[EmbedResult]:
        """On a batch thread: one runtime call for the texts of every job in the batch."""
        texts = [text for job in jobs for text in job.texts]
        started = time.perf_counter()
        output = self.runtime.embed(texts)
        whole = EmbedResult(
            vectors=output.vectors,
            token_counts=output.token_counts,
            batch_jobs=len(jobs),
            batch_texts=len(texts),
            batch_leader=True,
            batch_seconds=time.perf_counter() - started,
        )
        return split_by_jobs(whole, jobs)

    async def embed(self, job: EmbedJob) -> EmbedResult:
        """Embed one job (joins the current batch)."""
        return await self._batches(job)

    def info(self) -> dict[str, Any]:
        """What ``/health`` reports for this model."""
        return {
            "status": "ready",
            "device": self.runtime.device,
            "weights": "pretrained",
            "model": get_settings().embeddings_model_name,
            "dimensions": self.runtime.dimensions,
            "load_seconds": round(self.runtime.load_seconds, 3),
        }
