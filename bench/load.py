"""A small closed-loop load generator: N clients, each sending its next request as soon
as the previous one answers, for a fixed time or request count. Localhost only."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    label: str
    requests: int
    seconds: float
    concurrency: int
    latencies: list[float] = field(repr=False)
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[p - 1]

    def lines(self) -> list[str]:
        return [
            f"{self.label}: {self.requests} requests, {self.concurrency} concurrent, "
            f"{self.seconds:.1f} s",
            f"  throughput {self.rps:8.0f} req/s",
            f"  latency    p50 {self.percentile(50) * 1000:6.1f} ms   "
            f"p95 {self.percentile(95) * 1000:6.1f} ms   p99 {self.percentile(99) * 1000:6.1f} ms",
            f"  statuses   {dict(sorted(self.statuses.items()))}",
        ]


async def run_load(
    label: str,
    next_url: Callable[[], str],
    *,
    concurrency: int,
    duration: float | None = None,
    max_requests: int | None = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Run until ``duration`` seconds pass or ``max_requests`` are answered."""
    assert duration is not None or max_requests is not None
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.perf_counter() + (duration if duration is not None else 3600)

    async def client_loop(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            if max_requests is not None and sent >= max_requests:
                return
            sent += 1
            started = time.perf_counter()
            response = await http.get(next_url())
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as http:
        await http.get(next_url())  # warm the pool and the app
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(label, len(latencies), elapsed, concurrency, latencies, statuses)
