"""Ray Serve deployment for embeddings: cross-request batching with a token budget."""

from __future__ import annotations

import time
from typing import Any

from ray import serve

from serve_app.batching import ThreadedBatches
from serve_app.embeddings.config import EmbeddingsConfig
from serve_app.embeddings.jobs import EmbedJob, EmbedResult, split_by_jobs
from serve_app.settings import get_settings


def _job_tokens(jobs: list[EmbedJob]) -> int:
    return sum(job.est_tokens for job in jobs)


@serve.deployment(name="embeddings")
class EmbeddingDeployment:
    """Holds one :class:`EmbeddingRuntime`; batches jobs from concurrent requests. Its
    ``user_config`` is :class:`serve_app.embeddings.config.EmbeddingsConfig`; batching is
    :mod:`serve_app.batching`."""

    def __init__(self) -> None:
        # torch loads here, in the replica: the app's build step imports this
        from serve_app import prestart
        from serve_app.embeddings import preload

        kwargs = preload.settings_kwargs()
        # loading since this process started, when `serve-app run` started it, or since the
        # request that woke this standby worker (preload.py, serve_app/prestart.py)
        self.runtime = preload.take(kwargs)
        self.preloaded = self.runtime is not None
        self.preload = preload.outcome()
        if prestart.standby_worker:  # it imported the libraries, and the model once woken
            woken = "woken by the first request" if self.preloaded else "not woken"
            self.preload = f"standby worker ({woken})"
        if self.runtime is None:
            # imported here, not above: a woken standby imports it on its loading thread
            from serve_app.embeddings.runtime import EmbeddingRuntime

            self.runtime = EmbeddingRuntime(**kwargs)
            self.runtime.embed(["warm up"])  # first forward pass is slow; pay it before readiness
        prestart.replenish()  # scales to zero: a standby for the next wake
        self._batches = ThreadedBatches(self._embed_jobs, "embeddings", size_of=_job_tokens)

    def __del__(self) -> None:
        """Serve stops this replica (a scale-down, maybe to zero): the next replica's standby
        worker is asked for now, if it was not yet (serve_app/prestart.py)."""
        from serve_app import prestart

        prestart.replenish_now()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply batch settings from ``user_config`` without a restart; an unknown or invalid
        key fails the deploy, naming it."""
        config = EmbeddingsConfig.model_validate(user_config or {})
        self.runtime.max_batch_tokens = config.forward_batch_tokens
        self._batches.configure(
            max_batch_size=config.max_batch_tokens,
            wait_s=config.batch_wait_timeout_s,
            parallel=config.parallel_batches,
            threads=config.torch_threads,
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
        from serve_app.embeddings import preload

        return {
            **self.runtime.info(get_settings().embeddings_model_name),
            "preloaded": self.preloaded,
            "preload": self.preload,
            # calls this process answered as the woken standby, before Serve routed to it
            "standby_answers": preload.answered,
        }
