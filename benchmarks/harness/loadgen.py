"""Closed-loop async HTTP load generator, reusable by every model benchmark.

``concurrency`` workers each send the next request as soon as the previous one answers.
The warm-up lasts ``warmup_s`` and at least until every worker has had one answer (the queue
is full; with slow requests, OCR at concurrency 16, that takes longer than any fixed
warm-up); then the window of ``duration_s`` opens.

Throughput is measured per worker from the gaps between its consecutive answers that end in
the window (a worker with none there: the gap that spans the window's end) and summed over
workers. Counting the requests that fit inside a window is biased low when requests are long
against it or finish in step (a batch of pages answers together): it showed OCR at
concurrency 16 as 0 pages/s. Latency percentiles are of the same requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np


@dataclass
class LoadResult:
    """One closed-loop run."""

    target: str
    scenario: str
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    items_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch_size: float | None = None
    status_counts: dict[str, int] = field(default_factory=dict)

    def row(self) -> list[str]:
        batch = f"{self.mean_batch_size:.1f}" if self.mean_batch_size else "-"
        return [
            self.target,
            self.scenario,
            str(self.concurrency),
            f"{self.requests_per_s:.1f}",
            f"{self.items_per_s:.1f}",
            f"{self.p50_ms:.1f}",
            f"{self.p95_ms:.1f}",
            f"{self.p99_ms:.1f}",
            batch,
            str(self.errors),
        ]


HEADER = [
    "target",
    "scenario",
    "conc",
    "req/s",
    "items/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "batch",
    "errors",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def closed_loop(
    url: str,
    make_body: Callable[[int], Any],
    items_per_request: int,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    headers: dict[str, str] | None = None,
    target: str = "",
    scenario: str = "",
    timeout_s: float = 60.0,
    honour_retry_after: bool = False,
) -> LoadResult:
    """Run ``concurrency`` workers against ``url``.

    ``make_body(i)`` returns a JSON-able body, or ``(bytes, content_type)`` for raw uploads.
    With ``honour_retry_after`` a worker answered 503 waits for its ``Retry-After`` before the
    next request, as the web app's client does; otherwise it sends the next one at once.
    """
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency * 2, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    answers: list[list[tuple[float, float, str]]] = []  # per worker: (sent, answered, status)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        window: list[float] = []  # [opens, closes] once every worker has had an answer

        async def worker() -> None:
            nonlocal counter
            mine: list[tuple[float, float, str]] = []
            answers.append(mine)
            while not window or time.perf_counter() < window[1]:
                counter += 1
                body = make_body(counter)
                t0 = time.perf_counter()
                if isinstance(body, tuple):
                    data, content_type = body
                    kwargs: dict[str, Any] = {
                        "data": data,
                        "headers": {**(headers or {}), "Content-Type": content_type},
                    }
                else:
                    kwargs = {"json": body, "headers": headers}
                retry_after = 0.0
                try:
                    async with session.post(url, **kwargs) as response:
                        await response.read()
                        status = str(response.status)
                        if honour_retry_after and response.status == 503:
                            retry_after = float(response.headers.get("Retry-After") or 1)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                t1 = time.perf_counter()
                mine.append((t0, t1, status))
                if retry_after:
                    await asyncio.sleep(retry_after)
                if len(mine) == 1 and sum(1 for w in answers if w) == concurrency:
                    opens = max(start + warmup_s, t1)
                    window.extend([opens, opens + duration_s])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    opens, closes = window
    rate = 0.0
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    for mine in answers:
        counted = [i for i in range(1, len(mine)) if opens <= mine[i][1] <= closes]
        if not counted:  # longer than the window: the gap that spans its end
            counted = [i for i in range(1, len(mine)) if mine[i][1] > closes][:1]
        if not counted:
            continue
        span = mine[counted[-1]][1] - mine[counted[0] - 1][1]
        ok = [mine[i] for i in counted if mine[i][2] == "200"]
        rate += len(ok) / span if span > 0 else 0.0
        latencies += [t1 - t0 for t0, t1, _ in ok]
        for i in counted:
            statuses[mine[i][2]] = statuses.get(mine[i][2], 0) + 1
    ms = [x * 1000 for x in latencies]
    return LoadResult(
        target=target,
        scenario=scenario,
        concurrency=concurrency,
        requests=len(latencies),
        errors=sum(statuses.values()) - len(latencies),
        duration_s=duration_s,
        requests_per_s=rate,
        items_per_s=rate * items_per_request,
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        status_counts=statuses,
    )


def scrape_histogram(metrics_text: str, name: str, label: str) -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram series with one ``model`` label."""
    total = count = 0.0
    for suffix in ("sum", "count"):
        pattern = rf'^{name}_{suffix}\{{model="{label}"\}} (\S+)$'
        value = sum(float(v) for v in re.findall(pattern, metrics_text, re.M))
        if suffix == "sum":
            total = value
        else:
            count = value
    return total, count


def print_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def default(obj: Any) -> Any:
        if isinstance(obj, LoadResult):
            return asdict(obj)
        raise TypeError(type(obj))

    path.write_text(json.dumps(payload, indent=2, default=default))
