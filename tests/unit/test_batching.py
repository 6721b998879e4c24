"""ThreadedBatches: Serve's batch queue with batches on threads of their own (no Ray cluster)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from serve_app.batching import ThreadedBatches


@pytest.fixture(autouse=True)
def outside_a_replica(monkeypatch):
    from ray.serve.batching import _BatchQueue

    # Outside a replica the batch queue's start-up check of max_ongoing_requests has no
    # replica context to read; the batching itself is plain asyncio.
    monkeypatch.setattr(
        _BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests", lambda self: None
    )


class Slow:
    """A batch function that takes a while and records how batches overlapped."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.running = self.most = 0
        self.batches: list[list[str]] = []
        self.threads: list[int] = []  # torch threads each batch ran with
        self.names: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, items: list[str]) -> list[str]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.batches.append(list(items))
            self.threads.append(torch.get_num_threads())
            self.names.add(threading.current_thread().name)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return [item.upper() for item in items]


def submit_all(batches: ThreadedBatches, items: list[str]) -> list[str]:
    async def main():
        return await asyncio.gather(*(batches(item) for item in items))

    return asyncio.run(main())


def test_batches_overlap_share_the_threads_and_can_be_changed_without_a_restart():
    slow = Slow(0.3)
    batches = ThreadedBatches(slow, "test")
    batches.configure(max_batch_size=1, wait_s=0.01, parallel=2, threads=2)
    assert submit_all(batches, ["a", "b", "c", "d"]) == ["A", "B", "C", "D"]
    assert slow.most == 2 and sorted(map(len, slow.batches)) == [1, 1, 1, 1]
    # the first batch starts alone with both threads, the second shares them
    assert slow.threads[:2] == [2, 1] and set(slow.threads) <= {1, 2}
    assert all(name.startswith("test-batch") for name in slow.names)

    batches.configure(max_batch_size=4, wait_s=0.01, parallel=1, threads=2)
    slow.most, slow.batches, slow.threads = 0, [], []
    assert submit_all(batches, ["a", "b", "c", "d"]) == ["A", "B", "C", "D"]
    assert slow.most == 1 and max(map(len, slow.batches)) > 1
    assert set(slow.threads) == {2}  # one batch at a time: every thread


def test_batch_size_counts_the_units_of_size_of():
    slow = Slow(0.05)
    batches = ThreadedBatches(slow, "test", size_of=lambda items: sum(map(len, items)))
    batches.configure(max_batch_size=4, wait_s=0.05, parallel=1, threads=1)
    assert submit_all(batches, ["aa", "bb", "cc", "d"]) == ["AA", "BB", "CC", "D"]
    assert all(sum(map(len, batch)) <= 4 for batch in slow.batches)
    assert len(slow.batches) >= 2


def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs():
    def run(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("model failed")
        return [item.upper() for item in items]

    batches = ThreadedBatches(run, "test")
    batches.configure(max_batch_size=1, wait_s=0.0, parallel=2, threads=1)

    async def main():
        return await asyncio.gather(batches("bad"), batches("ok"), return_exceptions=True)

    failed, ok = asyncio.run(main())
    assert isinstance(failed, ValueError) and ok == "OK"


def test_calling_before_configure_is_a_clear_error():
    with pytest.raises(RuntimeError, match="configure"):
        asyncio.run(ThreadedBatches(Slow(0), "test")("a"))
