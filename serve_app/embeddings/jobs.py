"""Jobs the ingress sends the embeddings replica and the results per job (no Ray, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Largest estimated tokens of one job; the deployment's batch budget is at least this.
JOB_MAX_TOKENS = 4096


@dataclass(frozen=True)
class EmbedJob:
    """Texts sent to one embedding replica call, with their estimated token count."""

    texts: list[str]
    est_tokens: int


@dataclass(frozen=True)
class EmbedResult:
    """One job's vectors plus what the batch it ran in looked like (for metrics)."""

    vectors: np.ndarray
    token_counts: list[int]
    batch_jobs: int
    batch_texts: int
    batch_leader: bool  # True for exactly one job per batch, so each batch is counted once
    batch_seconds: float = 0.0  # model time of the whole batch


def split_by_jobs(whole: EmbedResult, jobs: list[EmbedJob]) -> list[EmbedResult]:
    """Cut the result of the jobs' concatenated texts back into one result per job; only the
    first job stays the batch leader."""
    results: list[EmbedResult] = []
    start = 0
    for i, job in enumerate(jobs):
        end = start + len(job.texts)
        results.append(
            replace(
                whole,
                vectors=whole.vectors[start:end],
                token_counts=whole.token_counts[start:end],
                batch_leader=whole.batch_leader and i == 0,
            )
        )
        start = end
    return results


def job_tokens(jobs: list[EmbedJob]) -> int:
    """The estimated tokens of ``jobs`` together."""
    return sum(job.est_tokens for job in jobs)


def estimate_tokens(text: str, max_tokens: int) -> int:
    """Cheap WordPiece estimate (about 4 characters a token), truncated like the model."""
    return min(max_tokens, len(text) // 4 + 3)


def split_jobs(texts: list[str], max_tokens: int) -> list[EmbedJob]:
    """Cut a request's texts into jobs of at most :data:`JOB_MAX_TOKENS` estimated tokens."""
    jobs: list[EmbedJob] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        est = estimate_tokens(text, max_tokens)
        if current and tokens + est > JOB_MAX_TOKENS:
            jobs.append(EmbedJob(current, tokens))
            current, tokens = [], 0
        current.append(text)
        tokens += est
    if current:
        jobs.append(EmbedJob(current, tokens))
    return jobs
