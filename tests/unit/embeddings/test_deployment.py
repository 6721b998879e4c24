"""The embeddings deployment's batching from user_config, in-process (no Ray cluster)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serve_app.embeddings.deployment import EmbeddingDeployment
from serve_app.embeddings.jobs import EmbedJob, split_jobs


@pytest.fixture(scope="module")
def replica():
    from ray.serve.batching import _BatchQueue

    patch = pytest.MonkeyPatch()
    # Outside a replica the batch queue's start-up check of max_ongoing_requests has no
    # replica context to read; the batching itself is plain asyncio.
    patch.setattr(
        _BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests", lambda self: None
    )
    yield EmbeddingDeployment.func_or_class()  # the real model
    patch.undo()


def embed_all(replica, jobs: list[EmbedJob]):
    async def main():
        return await asyncio.gather(*(replica.embed(job) for job in jobs))

    return asyncio.run(main())


@pytest.mark.parametrize("parallel", [1, 2])
def test_concurrent_jobs_get_their_own_vectors(replica, parallel):
    replica.reconfigure({"max_batch_tokens": 4096, "parallel_batches": parallel, "threads": 2})
    # each batch that runs at once has its share of the threads (one ONNX Runtime session)
    assert replica.runtime.encoder.threads == 2 // parallel
    texts = [f"{n} x oat milk, aisle {n}" for n in range(40)] + ["Grüße aus Köln: Käse"]
    jobs = [split_jobs(texts[i : i + 5], 256)[0] for i in range(0, len(texts), 5)]
    results = embed_all(replica, jobs)
    expected = replica.runtime.embed(texts).vectors
    got = np.concatenate([r.vectors for r in results])
    assert got.shape == (len(texts), 384)
    assert np.allclose(got, expected, atol=1e-5)  # each job its own rows, in order
    assert [len(r.token_counts) for r in results] == [len(j.texts) for j in jobs]
    leaders = [r for r in results if r.batch_leader]
    assert sum(r.batch_jobs for r in leaders) == len(jobs)  # every job in exactly one batch
    assert all(r.batch_seconds > 0 for r in leaders)


def test_torch_threads_is_read_as_threads(replica):
    """The key's former name still configures the threads (deployment configs in use)."""
    replica.reconfigure({"parallel_batches": 1, "torch_threads": 1})
    assert replica.runtime.encoder.threads == 1


def test_a_budget_below_one_job_is_refused(replica):
    with pytest.raises(ValueError, match="max_batch_tokens"):
        replica.reconfigure({"max_batch_tokens": 100})


def test_an_unknown_user_config_key_fails_the_deploy(replica):
    with pytest.raises(ValueError, match=r"max_batch_token\n.*Extra inputs are not permitted"):
        replica.reconfigure({"max_batch_token": 4096})  # a typo, not silently ignored
