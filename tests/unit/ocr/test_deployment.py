"""The OCR deployment's batching knobs from user_config, in-process (no Ray cluster)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import torch

from serve_app.ocr.deployment import OcrDeployment
from serve_app.ocr.jobs import PageJob, PageResult
from serve_app.ocr.pages import OcrPage


class SlowRuntime:
    """Stands in for the predictor's ``read`` only, to see how batches overlap."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.running = self.most = 0
        self.batches: list[int] = []
        self.threads: list[int] = []  # torch threads each batch ran with
        self.lock = threading.Lock()

    def __call__(self, pages: list[np.ndarray]) -> list[OcrPage]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.batches.append(len(pages))
            self.threads.append(torch.get_num_threads())
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return [OcrPage(width=p.shape[1], height=p.shape[0], lines=[]) for p in pages]


def read_pages(replica, n: int, deadline_s: float = 60) -> list[PageResult]:
    async def main():
        pages = [np.zeros((32, 40 + i, 3), np.uint8) for i in range(n)]
        jobs = [PageJob(p, time.time() + deadline_s) for p in pages]
        return await asyncio.gather(*(replica.read(job) for job in jobs))

    return asyncio.run(main())


def test_parallel_batches_overlap_and_can_be_changed_without_a_restart(monkeypatch):
    from ray.serve.batching import _BatchQueue

    # Outside a replica the batch queue's start-up check of max_ongoing_requests has no
    # replica context to read; the batching itself is plain asyncio.
    monkeypatch.setattr(
        _BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests", lambda self: None
    )
    replica = OcrDeployment.func_or_class()
    config = {"engine": "doctr", "max_batch_size": 1, "parallel_batches": 2, "torch_threads": 2}
    replica.reconfigure(config)
    slow = SlowRuntime(0.3)
    replica.runtime.read = slow  # the real docTR model was built (random weights) and warmed

    results = read_pages(replica, 4)
    assert [r.page.width for r in results] == [40, 41, 42, 43]  # each its own answer
    assert all(r.pages_at_once == 2 and r.page_seconds >= 0.3 for r in results)
    assert slow.batches == [1, 1, 1, 1] and slow.most == 2
    # the first page starts alone with both threads, the second shares them
    assert slow.threads[:2] == [2, 1] and set(slow.threads) <= {1, 2}

    replica.reconfigure({**config, "parallel_batches": 1, "max_batch_size": 4})
    slow.most, slow.batches, slow.threads = 0, [], []
    results = read_pages(replica, 4)
    assert [r.page.width for r in results] == [40, 41, 42, 43]
    assert slow.most == 1 and sum(slow.batches) == 4 and max(slow.batches) > 1
    assert set(slow.threads) == {2}  # one batch at a time: every thread


def test_pages_whose_request_was_answered_are_not_read(monkeypatch):
    from ray.serve.batching import _BatchQueue

    monkeypatch.setattr(
        _BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests", lambda self: None
    )
    replica = OcrDeployment.func_or_class()
    replica.reconfigure(
        {"engine": "doctr", "max_batch_size": 1, "parallel_batches": 1, "torch_threads": 1}
    )
    slow = SlowRuntime(0.3)
    replica.runtime.read = slow

    # Four pages queue behind each other; their requests stop waiting after 0.5 s (the
    # ingress answered 408): the first two are read, the rest are skipped, not computed.
    results = read_pages(replica, 4, deadline_s=0.5)
    assert [r.expired for r in results] == [False, False, True, True]
    assert [r.page.width for r in results[:2]] == [40, 41]
    assert slow.batches == [1, 1]
