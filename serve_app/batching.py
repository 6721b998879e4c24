"""Serve's cross-request batching with batches on threads of their own (used by replicas): on a
CPU two batches at once on half the threads each beat one on every core (docs/models.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from ray import serve

from serve_app.devices import cpu_threads

Item = TypeVar("Item")
Result = TypeVar("Result")


def set_torch_threads(threads: int) -> None:
    """torch's threads for the calling thread (imported here only when called)."""
    import torch

    torch.set_num_threads(threads)


class ThreadedBatches(Generic[Item, Result]):
    """``await batches(item)`` joins a batch; ``run(items)`` predicts a batch on a worker thread.

    Up to ``parallel`` batches run at once on threads of their own (the same ones each time, so
    torch keeps one OpenMP team per thread). They share ``threads``: a batch that starts alone
    gets them all, one beside another its share, set by ``set_threads`` (default: torch's;
    None for a runtime whose threads are fixed when it is built, such as onnxruntime).
    """

    def __init__(
        self,
        run: Callable[[list[Item]], list[Result]],
        name: str,
        size_of: Callable[[list[Item]], int] | None = None,
        set_threads: Callable[[int], None] | None = set_torch_threads,
    ):
        self._run = run
        self._name = name
        self._size_of = size_of
        self.set_threads = set_threads
        self._parallel = 0
        self._batch: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self.threads = 1  # torch threads shared by the running batches
        self.running = 0  # batches running now

    def configure(
        self, max_batch_size: int, wait_s: float, parallel: int = 1, threads: int = 0
    ) -> None:
        """Apply ``user_config`` without a restart: batch size (``size_of`` units), wait,
        batches at once and threads (0: all cores). A new ``parallel`` makes a new batch queue
        (Serve fixes its concurrency); batches queued on the old one still finish there."""
        self.threads = cpu_threads(threads)
        if self.set_threads is not None:
            # Ray sets OMP_NUM_THREADS to a replica's num_cpus (1 for fractions): override it.
            self.set_threads(self.threads)
        if parallel != self._parallel:
            old = self._pool
            self._pool = ThreadPoolExecutor(parallel, thread_name_prefix=f"{self._name}-batch")
            if old is not None:
                old.shutdown(wait=False)
            self._batch = serve.batch(
                max_batch_size=max_batch_size,
                batch_wait_timeout_s=wait_s,
                max_concurrent_batches=parallel,
                batch_size_fn=self._size_of,
            )(self._run_batch)
            self._parallel = parallel
        self._batch.set_max_batch_size(max_batch_size)
        self._batch.set_batch_wait_timeout_s(wait_s)

    async def __call__(self, item: Item) -> Result:
        if self._batch is None:
            raise RuntimeError(f"{self._name}: configure() was not called")
        return await self._batch(item)

    async def _run_batch(self, items: list[Item]) -> list[Result]:
        self.running += 1
        try:
            share = max(1, self.threads // self.running)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._on_thread, share, items)
        finally:
            self.running -= 1

    def _on_thread(self, threads: int, items: list[Item]) -> list[Result]:
        if self.set_threads is not None:
            self.set_threads(threads)  # this thread's OpenMP team
        return self._run(items)
