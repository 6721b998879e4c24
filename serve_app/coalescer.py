"""Merges concurrent small requests into fewer calls to a model deployment (no Ray)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueTimeout(Exception):
    """A request's queued work exceeded its budget: the model is overloaded. It was never
    sent, so the caller may answer 503 and the client retry it."""

    def __init__(self, waited_s: float):
        self.waited_s = waited_s
        super().__init__(f"waited {waited_s:.2f} s for the model")


class RequestCoalescer(Generic[Item, Result]):
    """Adaptive micro-batching and load shedding in front of a remote model.

    At most ``max_in_flight`` calls are open: a request that finds a free slot goes out at once;
    those that arrive meanwhile leave together in the next call (up to ``max_size`` units of
    ``size_of``). The model runs ``max_running`` calls at once; the others wait there, ready to
    start, except near overload (docs/models.md). With ``max_wait_s`` a request that would find
    more than its budget (:meth:`budget_s`) of work ahead is refused or shed (QueueTimeout);
    bulk work (``bulk=True``) queues behind the rest, with ``bulk_max_wait_s``, and is never
    shed once queued (docs/operations.md#load-shedding).
    """

    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[list[Result]]],
        size_of: Callable[[Item], int],
        max_size: int,
        max_in_flight: int = 2,
        max_running: int | None = None,
        max_wait_s: float | None = None,
        max_call_s: float | None = None,
        bulk_max_wait_s: float | None = None,
        max_wait_calls: float = 1.5,
    ):
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if max_running is not None and not 1 <= max_running <= max_in_flight:
            raise ValueError("max_running must be between 1 and max_in_flight")
        self._call = call
        self._size_of = size_of
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self.max_running = max_running or max_in_flight
        self.max_wait_s = max_wait_s
        self.max_call_s = max_call_s
        self.bulk_max_wait_s = bulk_max_wait_s
        self.max_wait_calls = max_wait_calls
        self.shed = 0  # requests that left the queue with QueueTimeout
        self.rate: float | None = None  # units per second per call (moving average)
        self.call_units: float | None = None  # units per call (moving average)
        # queued work per class, interactive (False) before bulk (True)
        self._queues: dict[bool, deque[tuple[Item, asyncio.Future[Result]]]] = {
            False: deque(),
            True: deque(),
        }
        self._units = {False: 0, True: 0}
        self._in_flight = 0
        self._shedding = False  # refused or shed requests since the queue was last empty
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Requests queued here, not yet sent."""
        return len(self._queues[False]) + len(self._queues[True])

    def budget_s(self, bulk: bool = False) -> float | None:
        """Seconds of queued work a request may find ahead of it: ``max_wait_s`` (bulk:
        ``bulk_max_wait_s``), or ``max_wait_calls`` calls at their measured duration when
        longer, so that a slower machine is not taken for overload. None: no shedding."""
        floor = self.bulk_max_wait_s if bulk else self.max_wait_s
        if floor is None or self.call_units is None or not self.rate:
            return floor
        # a typical call's work at the measured pace, not its wait behind the running calls
        return max(floor, self.max_wait_calls * (self.call_units / self.rate))

    def admit(self, units: int, bulk: bool = False) -> None:
        """Refuse (QueueTimeout) a request of ``units`` that would find more than its budget
        of work queued ahead, at the pace of ``max_running`` calls; interactive requests count
        only interactive work (they overtake bulk). With nothing queued ahead, anything goes."""
        limit = self.budget_s(bulk)
        ahead = self._units[False] + (self._units[True] if bulk else 0)
        if limit is None or not self.rate or not ahead:
            return
        if (ahead + units) / (self.rate * self.max_running) > limit:
            self._refused()
            raise QueueTimeout(0.0)

    async def submit(self, item: Item, admit: bool = True, bulk: bool = False) -> Result:
        """Queue ``item`` and wait for its own result (or the call's exception). With
        ``admit=False`` (parts of a request admitted as a whole) it is neither refused nor
        shed after its budget; bulk work is never shed once queued."""
        loop = asyncio.get_running_loop()
        if admit:
            self.admit(self._size_of(item), bulk)
        future: asyncio.Future[Result] = loop.create_future()
        entry = (item, future)
        queue = self._queues[bulk]
        queue.append(entry)
        self._units[bulk] += self._size_of(item)
        self._dispatch()
        if self.max_wait_s is None or not admit or bulk or future.done():
            return await future
        queued_at = loop.time()
        done = await self._wait_budget(future, queued_at, 1)
        overloaded = self._shedding or self._near_overload()
        if not done and not overloaded and self._in_next_call(entry):
            # a slow call, not overload: shedding would send away the front of the queue
            done = await self._wait_budget(future, queued_at, 2)
        if not done and entry in queue:  # still queued: shed it, it was never sent
            queue.remove(entry)
            self._units[bulk] -= self._size_of(item)
            future.cancel()
            self._refused()
            raise QueueTimeout(loop.time() - queued_at)
        return await future  # sent before the deadline: its call decides

    async def _wait_budget(
        self, future: asyncio.Future[Result], queued_at: float, budgets: int
    ) -> bool:
        """Wait for ``future`` until ``budgets`` times the interactive budget has passed since
        ``queued_at`` (read again as calls are measured); True when it is done."""
        loop = asyncio.get_running_loop()
        while not future.done():
            budget = self.budget_s()
            assert budget is not None
            left = queued_at + budgets * budget - loop.time()
            if left <= 0:
                return False
            await asyncio.wait({future}, timeout=left)
        return True

    def _in_next_call(self, entry: tuple[Item, asyncio.Future[Result]]) -> bool:
        """Whether a queued interactive ``entry`` fits in the next call with all ahead of it."""
        units = 0
        for queued in self._queues[False]:
            units += self._size_of(queued[0])
            if queued is entry:
                return units <= self._call_limit()
        return False  # not queued any more

    def _near_overload(self) -> bool:
        """More than half of the budget of interactive work queued, at the measured pace."""
        budget = self.budget_s()
        if budget is None or not self.rate:
            return False
        return self._units[False] / (self.rate * self.max_running) > budget / 2

    def _call_limit(self) -> int:
        """Units the next call may take: all of ``max_size``, or about ``max_call_s`` of work
        near overload (short calls keep the tail short)."""
        if self.max_call_s and self._near_overload():
            assert self.rate is not None
            return min(self.max_size, max(1, int(self.rate * self.max_call_s)))
        return self.max_size

    def _refused(self) -> None:
        self.shed += 1
        self._shedding = True  # until the queue drains, open only the calls the model runs

    def _dispatch(self) -> None:
        if not self._queues[False]:
            self._shedding = False
        limit = self._call_limit()
        overloaded = self._shedding or self._near_overload()
        open_calls = self.max_running if overloaded else self.max_in_flight
        while self._in_flight < open_calls and self.waiting:
            group: list[tuple[Item, asyncio.Future[Result]]] = []
            size = 0
            for bulk in (False, True):  # interactive first, then fill up with bulk work
                queue = self._queues[bulk]
                while queue and (not group or size + self._size_of(queue[0][0]) <= limit):
                    entry = queue.popleft()
                    units = self._size_of(entry[0])
                    self._units[bulk] -= units
                    size += units
                    group.append(entry)
                if queue:  # the next one does not fit: do not let a later one overtake it
                    break
            group = [(i, f) for i, f in group if not f.cancelled()]
            if not group:
                continue
            self._in_flight += 1
            task = asyncio.create_task(self._run(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            results = await self._call([item for item, _ in group])
            elapsed = loop.time() - started
            units = sum(self._size_of(item) for item, _ in group)
            if elapsed > 0 and units >= self.max_size // 16:  # tiny calls: all overhead
                pace = units / elapsed
                # the best recent pace, decaying slowly: small calls' low pace is overhead
                self.rate = pace if self.rate is None else max(pace, 0.9 * self.rate + 0.1 * pace)
                self.call_units = (
                    units if self.call_units is None else 0.8 * self.call_units + 0.2 * units
                )
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
