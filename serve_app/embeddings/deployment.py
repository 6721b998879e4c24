"""Ray Serve deployment for embeddings: cross-request batching with a token budget."""

from __future__ import annotations

from typing import Any

from ray import serve

from serve_app.batching import ThreadedBatches, set_torch_threads
from serve_app.devices import cpu_threads
from serve_app.embeddings.config import EmbeddingsConfig
from serve_app.embeddings.jobs import EmbedJob, EmbedResult, job_tokens
from serve_app.settings import get_settings


@serve.deployment(name="embeddings")
class EmbeddingDeployment:
    """One :class:`EmbeddingRuntime`; batches the jobs of concurrent requests."""

    def __init__(self) -> None:
        # imported here, not above: the app's build step imports this module
        from serve_app.embeddings.runtime import EmbeddingRuntime

        self.runtime = EmbeddingRuntime.from_settings(get_settings())
        self.runtime.embed(["warm up"])  # the first forward pass is slow: paid before readiness
        # torch's threads are per calling thread; an ONNX Runtime session's fixed when made
        torch = self.runtime.encoder.engine == "torch"
        self._batches = ThreadedBatches(
            self.runtime.embed_jobs,
            "embeddings",
            size_of=job_tokens,
            set_threads=set_torch_threads if torch else None,
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply ``user_config`` without a restart; an unknown or invalid key fails the deploy."""
        config = EmbeddingsConfig.model_validate(user_config or {})
        self.runtime.max_batch_tokens = config.forward_batch_tokens
        # each of the batches that run at once gets its share of the threads
        self.runtime.set_threads(max(1, cpu_threads(config.threads) // config.parallel_batches))
        self._batches.configure(
            max_batch_size=config.max_batch_tokens,
            wait_s=config.batch_wait_timeout_s,
            parallel=config.parallel_batches,
            threads=config.threads,
        )

    async def embed(self, job: EmbedJob) -> EmbedResult:
        """Embed one job (joins the current batch)."""
        return await self._batches(job)

    def info(self) -> dict[str, Any]:
        """What ``/health`` reports for this model."""
        return self.runtime.info(get_settings().embeddings_model_name)
