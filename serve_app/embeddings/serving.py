"""Turns a validated embeddings request into deployment calls and an OpenAI response."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING

import numpy as np

from serve_app.coalescer import QueueTimeout, RequestCoalescer
from serve_app.embeddings.jobs import (
    JOB_MAX_TOKENS,
    EmbedJob,
    EmbedResult,
    job_tokens,
    split_by_jobs,
    split_jobs,
)
from serve_app.embeddings.protocol import EmbeddingRequest
from serve_app.errors import ApiError, overloaded, refuse_long
from serve_app.logs import Every, get_logger
from serve_app.metrics import BATCH_ITEMS, BATCH_REQUESTS, BATCH_SECONDS, SHED
from serve_app.responses import FastJSONResponse
from serve_app.settings import Settings

if TYPE_CHECKING:  # the bridge (serve_app/startup/bridge/) serves this without Ray
    from serve_app.deployment_client import DeploymentClient
    from serve_app.embeddings.model_files import ModelExport

log = get_logger(__name__)


class EmbeddingService:
    """Limits, fan-out to the embeddings deployment, and the response body."""

    def __init__(self, client: DeploymentClient, settings: Settings, model: ModelExport):
        self.client = client
        self.settings = settings
        self.dimensions = model.dimensions
        self.max_tokens = settings.embeddings_max_tokens or model.max_tokens
        name = settings.embeddings_model_name
        self.model_names = {name, f"sentence-transformers/{name}"}
        self._shed_log = Every(5.0)
        self.coalescer: RequestCoalescer[EmbedJob, EmbedResult] = RequestCoalescer(
            self._call_merged,
            size_of=lambda job: job.est_tokens,
            max_size=JOB_MAX_TOKENS,
            max_in_flight=settings.embeddings_ingress_in_flight,
            max_running=settings.embeddings_ingress_running,
            max_wait_s=settings.embeddings_queue_timeout_s or None,
            max_call_s=0.4,
            bulk_max_wait_s=settings.embeddings_bulk_queue_timeout_s or None,
            max_wait_calls=settings.embeddings_queue_calls,
        )

    def check(self, body: EmbeddingRequest) -> list[str]:
        """Reject what the model cannot serve, before any model time is spent."""
        if body.model is not None and body.model not in self.model_names:
            raise ApiError(
                404,
                "model_not_found",
                f"Model {body.model!r} is not served here; "
                f"use {self.settings.embeddings_model_name!r}.",
            )
        if body.dimensions is not None and body.dimensions != self.dimensions:
            raise ApiError(
                422, "validation_error", f"dimensions: this model only returns {self.dimensions}."
            )
        texts = body.texts()
        limit = self.settings.embeddings_max_inputs
        if len(texts) > limit:
            raise ApiError(
                413, "too_many_inputs", f"{len(texts)} inputs given; at most {limit} per request."
            )
        refuse_long(texts, self.settings.embeddings_max_input_chars, "input_too_long", "input")
        return texts

    async def embed(self, texts: list[str], bulk: bool = False) -> tuple[np.ndarray, list[int]]:
        """Vectors and token counts for ``texts`` (other modules call this too). ``bulk``
        (document ingestion) queues behind interactive requests with a longer budget."""
        jobs = split_jobs(texts, self.max_tokens)
        try:
            if len(jobs) == 1:  # refused at once, or shed if it waits too long
                results: list[EmbedResult] = [await self.coalescer.submit(jobs[0], bulk=bulk)]
            else:  # a large request is admitted or refused as a whole, never half-served
                self.coalescer.admit(job_tokens(jobs), bulk)
                results = await asyncio.gather(
                    *(self.coalescer.submit(job, admit=False, bulk=bulk) for job in jobs)
                )
        except QueueTimeout as exc:
            SHED.labels("embeddings").inc()
            if self._shed_log():
                why = (
                    f"waited {exc.waited_s:.2f} s"
                    if exc.waited_s
                    else "refused at once: more than that much work queued ahead"
                )
                log.warning(
                    "shedding load: an embeddings request was answered 503 (%s; limit %.2f s "
                    "of queueing); %d more since the last line",
                    why,
                    self.settings.embeddings_bulk_queue_timeout_s
                    if bulk
                    else self.settings.embeddings_queue_timeout_s,
                    self._shed_log.suppressed,
                )
                self._shed_log.suppressed = 0
            raise overloaded("embeddings", self.settings.retry_after_s) from None
        for result in results:
            if result.batch_leader:
                BATCH_REQUESTS.labels("embeddings").observe(result.batch_jobs)
                BATCH_ITEMS.labels("embeddings").observe(result.batch_texts)
                BATCH_SECONDS.labels("embeddings").observe(result.batch_seconds)
        vectors = (
            results[0].vectors
            if len(results) == 1
            else np.concatenate([r.vectors for r in results])
        )
        tokens = [n for r in results for n in r.token_counts]
        return vectors, tokens

    async def _call_merged(self, jobs: list[EmbedJob]) -> list[EmbedResult]:
        """One deployment call for jobs of several requests; results split back per job."""
        if len(jobs) == 1:
            return [await self.client.call("embed", jobs[0])]
        merged = EmbedJob([t for job in jobs for t in job.texts], job_tokens(jobs))
        result: EmbedResult = await self.client.call("embed", merged)
        return split_by_jobs(result, jobs)

    async def create(self, body: EmbeddingRequest) -> FastJSONResponse:
        texts = self.check(body)
        vectors, tokens = await self.embed(texts)
        if body.encoding_format == "base64":
            little = vectors.astype("<f4", copy=False)
            rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
        else:
            rows = list(vectors)  # numpy rows; FastJSONResponse serialises them natively
        total = int(sum(tokens))
        return FastJSONResponse(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": row}
                    for i, row in enumerate(rows)
                ],
                "model": self.settings.embeddings_model_name,
                "usage": {"prompt_tokens": total, "total_tokens": total},
            }
        )
