"""Requests per second and latency percentiles of one endpoint of a running API."""

from __future__ import annotations

import asyncio

from bench.load import run_load


def run(url: str, requests: int = 2000, concurrency: int = 20) -> list[str]:
    result = asyncio.run(
        run_load(
            f"GET {url}", lambda: url, concurrency=concurrency, max_requests=requests, duration=60
        )
    )
    return result.lines()
