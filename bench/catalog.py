"""``shop bench catalog``: listing, filtered listing and search against a running API,
and how search latency grows from 1k to 100k products.

The three workloads draw their parameters at random from a wide space (pages, price
bands, categories, search words), so most requests miss the response cache and measure
the database path; the hit ratio is what a real shop would see from such traffic.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from bench.load import LoadResult, run_load
from cli.seed.vocabulary import ADJECTIVES, MATERIALS, NOUNS, TAXONOMY
from core.settings import Settings

LEAVES = [child.lower().replace(" ", "-") for _, children in TAXONOMY for child in children]
WORDS = [*ADJECTIVES, *MATERIALS, *(n for nouns in NOUNS.values() for n in nouns)]


def workloads(base: str, rng: random.Random) -> dict[str, Callable[[], str]]:
    api = base.rstrip("/") + "/api/products?"

    def listing() -> str:
        return api + urlencode({"page": rng.randint(1, 200), "limit": 20})

    def filtered() -> str:
        low = rng.randint(0, 50_000)
        return api + urlencode(
            {
                "category": rng.choice(LEAVES),
                "minPrice": low,
                "maxPrice": low + rng.randint(1_000, 60_000),
                "sort": rng.choice(["price_asc", "price_desc", "newest", "rating"]),
                "page": rng.randint(1, 5),
            }
        )

    def search() -> str:
        words = rng.sample(WORDS, rng.choice([1, 1, 2]))
        # Some searches carry a typo or a cut-off word, as people type them.
        if rng.random() < 0.3:
            w = words[0]
            words[0] = w[: max(4, len(w) - 2)]
        return api + urlencode({"search": " ".join(words).lower(), "page": rng.randint(1, 3)})

    return {"listing": listing, "filtered listing": filtered, "search": search}


async def product_count(base: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(base.rstrip("/") + "/api/products", params={"limit": 1})
        response.raise_for_status()
        return int(response.json()["total"])


async def measure(base: str, duration: float, concurrency: int, seed: int = 7) -> list[LoadResult]:
    rng = random.Random(seed)
    results = []
    for label, next_url in workloads(base, rng).items():
        results.append(await run_load(label, next_url, concurrency=concurrency, duration=duration))
    return results


@asynccontextmanager
async def api_process(settings: Settings, *, analytics: bool = False) -> AsyncIterator[str]:
    """``shop api`` for ``settings`` in a process of its own, as in production (with
    analytics recording off unless ``analytics``)."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.resolved_database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "JWT_SECRET": "bench-only-secret-" + "x" * 32,
        "ANALYTICS_ENABLED": "true" if analytics else "false",
        "LOG_LEVEL": "WARNING",
    }
    port = settings.shop_api_port
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "api",
        "--port",
        str(port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                with suppress(httpx.HTTPError):
                    if (await http.get(base + "/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


@dataclass(frozen=True)
class ScalingPoint:
    products: int
    result: LoadResult


async def search_scaling(
    settings: Settings, sizes: list[int], duration: float, concurrency: int
) -> list[ScalingPoint]:
    """Seed a scratch database to each size in turn and measure search on it, through a
    scratch API process (its own Redis database, so no cached answer crosses over)."""
    from rich.console import Console

    from bench.scratch import scratch_database
    from cli.seed import Seeder
    from core.db import create_engine, create_session_factory

    points: list[ScalingPoint] = []
    async with scratch_database(settings) as scratch:
        engine = create_engine(scratch)
        seeder = Seeder(create_session_factory(engine), scratch, Console(quiet=True))
        rng = random.Random(42)
        leaves = await seeder.categories()
        seeded = 0
        async with api_process(scratch) as api_base:
            from redis.asyncio import Redis

            redis = Redis.from_url(scratch.redis_url or "")
            for size in sorted(sizes):
                if size > seeded:
                    await seeder.products(rng, size - seeded, leaves, first_number=seeded + 1)
                    seeded = size
                await redis.flushdb()
                search = workloads(api_base, random.Random(11))["search"]
                result = await run_load(
                    f"search at {size:,} products",
                    search,
                    concurrency=concurrency,
                    duration=duration,
                )
                points.append(ScalingPoint(size, result))
            await redis.flushdb()
            await redis.aclose()
        await engine.dispose()
    return points
