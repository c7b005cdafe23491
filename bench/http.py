"""Requests per second and latency percentiles of one endpoint of a running API.

Bounded by request count and a time limit; talks only to the local stack.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx


async def _measure(url: str, requests: int, concurrency: int, limit_seconds: float) -> list[str]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    deadline = time.perf_counter() + limit_seconds

    async def client_loop(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            response = await http.get(url)
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:
        await http.get(url)  # warm the connection pool and the app
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return [
        f"GET {url}: {len(latencies)} requests, {concurrency} concurrent, {elapsed:.1f} s",
        f"  throughput {len(latencies) / elapsed:8.0f} req/s",
        f"  latency    p50 {q[49] * 1000:6.1f} ms   p95 {q[94] * 1000:6.1f} ms   "
        f"p99 {q[98] * 1000:6.1f} ms",
        f"  statuses   {dict(sorted(statuses.items()))}",
    ]


def run(
    url: str, requests: int = 2000, concurrency: int = 20, limit_seconds: float = 60
) -> list[str]:
    return asyncio.run(_measure(url, requests, concurrency, limit_seconds))
