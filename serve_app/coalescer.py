"""Merges concurrent small requests into fewer calls to a model deployment (no Ray)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class RequestCoalescer(Generic[Item, Result]):
    """Adaptive micro-batching in front of a remote model.

    At most ``max_in_flight`` downstream calls run at once. A request that finds a free slot
    goes out at once (no added latency when idle); requests that arrive while every slot is
    busy wait and leave together in the next call, up to ``max_size`` units (``size_of``).
    Each downstream call costs a fixed overhead (serialisation, scheduling, a replica's
    request bookkeeping), so under load this turns N small calls into one.
    """

    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[list[Result]]],
        size_of: Callable[[Item], int],
        max_size: int,
        max_in_flight: int = 2,
    ):
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._call = call
        self._size_of = size_of
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self._pending: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Requests queued here, not yet sent."""
        return len(self._pending)

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its own result (or the call's exception)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._in_flight < self.max_in_flight and self._pending:
            group = [self._pending.popleft()]
            size = self._size_of(group[0][0])
            while self._pending and size + self._size_of(self._pending[0][0]) <= self.max_size:
                item = self._pending.popleft()
                size += self._size_of(item[0])
                group.append(item)
            group = [(i, f) for i, f in group if not f.cancelled()]
            if not group:
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._call([item for item, _ in group])
            if len(results) != len(group):
                raise RuntimeError(f"{len(results)} results for {len(group)} items")
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except BaseException as exc:  # every waiter gets the failure, nobody hangs
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            self._dispatch()
