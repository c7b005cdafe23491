"""``shop bench catalog``: listing, filtered listing, search and product detail against a
running API, next to a FastAPI hello world served the same way (``--compare-hello``),
and how search latency grows from 1k to 100k products.

The load comes from generator processes of its own (``bench.load.run_load_processes``):
a Python client in the measuring process would be the bottleneck. The workloads draw
their parameters at random from a wide space (pages, price bands, categories, search
words, 2,000 products), so most requests miss the response cache and measure the
database path; the hit ratio is what a real shop would see from such traffic.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import asyncpg
import httpx
import psutil

from bench.http import hello_world
from bench.load import GeneratedLoad, TargetFactory, fixed, run_load_processes
from bench.stack_cost import API as API_ROLE
from bench.stack_cost import POSTGRES, StackProcesses, cpu_during, stack_processes
from cli.seed.vocabulary import ADJECTIVES, MATERIALS, NOUNS, TAXONOMY
from core.errors import DependencyUnavailable
from core.settings import Settings

LEAVES = [child.lower().replace(" ", "-") for _, children in TAXONOMY for child in children]
WORDS = [*ADJECTIVES, *MATERIALS, *(n for nouns in NOUNS.values() for n in nouns)]
API = "/api/products"


def _listing(rng: random.Random) -> Callable[[], str]:
    return lambda: f"{API}?" + urlencode({"page": rng.randint(1, 200), "limit": 20})


def _filtered(rng: random.Random) -> Callable[[], str]:
    def target() -> str:
        low = rng.randint(0, 50_000)
        return f"{API}?" + urlencode(
            {
                "category": rng.choice(LEAVES),
                "minPrice": low,
                "maxPrice": low + rng.randint(1_000, 60_000),
                "sort": rng.choice(["price_asc", "price_desc", "newest", "rating"]),
                "page": rng.randint(1, 5),
            }
        )

    return target


def _search(rng: random.Random) -> Callable[[], str]:
    def target() -> str:
        words = rng.sample(WORDS, rng.choice([1, 1, 2]))
        # Some searches carry a typo or a cut-off word, as people type them.
        if rng.random() < 0.3:
            w = words[0]
            words[0] = w[: max(4, len(w) - 2)]
        return f"{API}?" + urlencode({"search": " ".join(words).lower(), "page": rng.randint(1, 3)})

    return target


def _detail(keys: tuple[str, ...], rng: random.Random) -> Callable[[], str]:
    return lambda: f"{API}/{rng.choice(keys)}"


SEARCH: TargetFactory = _search


def workloads(keys: Sequence[str]) -> dict[str, TargetFactory]:
    """The four catalogue workloads; product detail draws from ``keys`` (slugs)."""
    return {
        "listing": _listing,
        "filtered listing": _filtered,
        "search": _search,
        "product detail": partial(_detail, tuple(keys)),
    }


HELLO: TargetFactory = partial(fixed, "/")


async def product_count(base: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(base.rstrip("/") + API, params={"limit": 1})
        response.raise_for_status()
        return int(response.json()["total"])


async def product_keys(base: str, pages: int = 20, seed: int = 5) -> list[str]:
    """Slugs of about ``pages`` x 100 products from pages spread over the catalogue."""
    rng = random.Random(seed)
    total = await product_count(base)
    last = max(1, min(10_000, (total + 99) // 100))
    keys: list[str] = []
    async with httpx.AsyncClient(timeout=30, base_url=base) as http:
        for page in sorted({rng.randint(1, last) for _ in range(pages)}):
            response = await http.get(API, params={"limit": 100, "page": page})
            response.raise_for_status()
            keys.extend(item["slug"] for item in response.json()["items"])
    return keys


def _run(
    label: str,
    base: str,
    targets: TargetFactory,
    cpu: StackProcesses,
    duration: float,
    concurrency: int,
    generators: int,
) -> GeneratedLoad:
    with cpu_during(cpu) as used:
        result = run_load_processes(
            label, base, targets, concurrency=concurrency, duration=duration, processes=generators
        )
    result.server_cpu = used
    return result


def connection_spread(servers: Sequence[psutil.Process], port: int) -> list[int]:
    """How many connections to ``port`` each process under ``servers`` holds, most first.
    uvicorn's workers share one listening socket and take connections as they race to
    accept them, so 32 keep-alive clients could well be 22 on one process and 10 on the
    other: the crowded one's requests wait twice as long (docs/benchmarks.md *Catalogue
    reads*). The API's processes take turns to accept (``cli.serve.AcceptTurnsProtocol``),
    which evens most spreads, not every one on a busy machine: so it is still printed."""
    held: dict[int, int] = {}
    for root in servers:
        with suppress(psutil.Error):
            for process in [root, *root.children(recursive=True)]:
                with suppress(psutil.Error):
                    count = sum(
                        1
                        for c in process.net_connections("tcp")
                        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
                    )
                    if count:
                        held[process.pid] = count
    return sorted(held.values(), reverse=True)


def _spread_run(
    run: Callable[[], GeneratedLoad], cpu: StackProcesses, base: str
) -> tuple[GeneratedLoad, list[int]]:
    """``run`` (a ``_run`` against ``base``), and how the clients' connections were spread
    over the API's processes (``connection_spread``, read every quarter of a second: the
    reading that found the most, once every generator has connected, however long their
    start took)."""
    servers = cpu.roles.get(API_ROLE, [])
    port = urlsplit(base).port or 80
    spread: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.25):
            found = connection_spread(servers, port)
            if sum(found) >= sum(spread):
                spread[:] = found

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run()
    finally:
        done.set()
        watcher.join()
    return result, spread


def measure(
    base: str,
    keys: Sequence[str],
    duration: float,
    concurrency: int,
    generators: int,
    cpu: StackProcesses | None = None,
) -> list[GeneratedLoad]:
    """Each workload in turn; with ``cpu``, the stack's CPU time during each."""
    cpu = cpu or StackProcesses({})
    return [
        _run(label, base, targets, cpu, duration, concurrency, generators)
        for label, targets in workloads(keys).items()
    ]


def measure_hello(
    processes: int, duration: float, concurrency: int, generators: int
) -> GeneratedLoad:
    """The FastAPI hello world (``bench.hello``) in ``processes`` processes, same load."""
    with hello_world(processes) as url:
        cpu = stack_processes(url)
        return _run("hello world", url, HELLO, cpu, duration, concurrency, generators)


def table(results: list[GeneratedLoad], hello: GeneratedLoad | None) -> list[str]:
    lines = [
        f"{'request':<18}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'share of hello':>16}   statuses"
    ]
    for r in [*results, *([hello] if hello else [])]:
        share = f"{r.rps / hello.rps:.3f}x" if hello and hello.rps and r is not hello else "-"
        lines.append(
            f"{r.label:<18}{r.requests:>9}{r.rps:>8.0f}{r.percentile(50) * 1000:>9.1f}"
            f"{r.percentile(95) * 1000:>9.1f}{r.percentile(99) * 1000:>9.1f}{share:>16}"
            f"   {dict(sorted(r.statuses.items()))}"
        )
    cpu = ", ".join(
        f"{r.label} {'/'.join(f'{c:.0%}' for c in r.generator_cpu)}"
        for r in [*results, *([hello] if hello else [])]
    )
    lines.append(f"load generator CPU per process (100% = its core is the limit): {cpu}")
    return lines + cpu_table(results, hello)


def cpu_table(results: list[GeneratedLoad], hello: GeneratedLoad | None) -> list[str]:
    """Servers' CPU ms per request; the API's as a share of the hello world's, the
    throughput share two cores would give with nothing else running."""
    measured = [r for r in [*results, *([hello] if hello else [])] if r.server_cpu and r.requests]
    if not measured:
        return []
    hello_api = hello.server_cpu.get("API", 0) / hello.requests if hello and hello.requests else 0
    lines = ["server CPU per request, ms (user + system, each process with its children):"]
    for r in measured:
        line = per_request_line(r.label, r.server_cpu, r.requests)
        api = r.server_cpu.get("API", 0) / r.requests
        if hello_api and api and r is not hello:
            line += f"   API CPU share of hello {hello_api / api:.3f}x"
        lines.append(line)
    return lines


def per_request_line(label: str, cpu: dict[str, float], requests: int) -> str:
    parts = ", ".join(f"{name} {seconds * 1000 / requests:.2f}" for name, seconds in cpu.items())
    return f"  {label:<18}{parts}"


# How long a benchmark's own API process may take to serve: its start-up imports the
# app, opens its pools and builds the search engine, slow on a loaded machine.
API_START_SECONDS = 180.0


async def _until_serving(proc: asyncio.subprocess.Process, base: str) -> None:
    """Until ``base`` answers ``/health``; an API process that exits or never answers is
    an error saying so (it was handed out anyway after 20 s, and the bench then failed
    with "did not answer" on a loaded machine)."""
    deadline = asyncio.get_running_loop().time() + API_START_SECONDS
    async with httpx.AsyncClient() as http:
        while True:
            with suppress(httpx.HTTPError):
                if (await http.get(base + "/health")).status_code == 200:
                    return
            if proc.returncode is not None:
                raise DependencyUnavailable(
                    f"the API process for {base} exited with {proc.returncode}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise DependencyUnavailable(
                    f"the API process for {base} did not serve in {API_START_SECONDS:.0f} s"
                )
            await asyncio.sleep(0.1)


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
        "SEARCH_INDEX": "true" if settings.search_index else "false",
        "SEARCH_INDEX_DIR": str(settings.search_index_path.resolve()),
    }
    port = settings.shop_api_port
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "api",
        "--port",
        str(port),
        "--workers",
        str(settings.shop_api_workers),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _until_serving(proc, base)
        yield base
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


# Long enough for both API processes to have served searches after the spawned load
# generators' imports.
WARM_UP_SECONDS = 3.0


async def settle(settings: Settings) -> None:
    """After a bulk load: vacuum and analyse the catalogue's tables and write the dirty
    pages out, so that what is measured next is search at this size, not the load's
    write-back. (A checkpoint started by the 99,000 products' writes spent 47 s writing,
    all through the search measured at 100,000: PostgreSQL's log, 2026-12-06.)"""
    from bench.scratch import asyncpg_dsn
    from core.db import require_database_url

    conn = await asyncpg.connect(asyncpg_dsn(require_database_url(settings)))
    try:
        await conn.execute("VACUUM (ANALYZE) products, stock_levels")
        # A superuser's or pg_checkpoint's right: a managed server may refuse it.
        with suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


@dataclass(frozen=True)
class ScalingPoint:
    products: int
    result: GeneratedLoad
    # Connections per API process, most first (``connection_spread``).
    spread: list[int]


async def search_scaling(
    settings: Settings, sizes: list[int], duration: float, concurrency: int, generators: int
) -> list[ScalingPoint]:
    """Seed a scratch database to each size in turn and measure search on it, through a
    scratch API process (its own Redis database, so no cached answer crosses over, and
    its own search index, rebuilt after each seeding as `shop seed` does)."""
    from bench.scratch import scratch_database

    # CPU per search: the scratch API's processes and the stack's PostgreSQL (which
    # serves the scratch database): a figure the neighbours on a shared machine move far
    # less than latency, and one that tells an index search (well under a millisecond of
    # PostgreSQL) from a full-text search in PostgreSQL (13-15 ms).
    database = {
        role: found
        for role, found in stack_processes(settings.api_base_url).roles.items()
        if role == POSTGRES
    }
    with tempfile.TemporaryDirectory(prefix="shop-bench-index-") as index_dir:
        async with scratch_database(settings, search_index_dir=Path(index_dir)) as scratch:
            return await _scale_search(scratch, sizes, duration, concurrency, generators, database)


async def _scale_search(
    scratch: Settings,
    sizes: list[int],
    duration: float,
    concurrency: int,
    generators: int,
    database: dict[str, list[psutil.Process]],
) -> list[ScalingPoint]:
    from redis.asyncio import Redis
    from rich.console import Console

    from cli.seed import Seeder
    from core.db import create_engine, create_session_factory
    from services.catalog.cache import CatalogCache
    from services.catalog.indexing import SearchIndexing
    from services.catalog.versions import announce_version

    points: list[ScalingPoint] = []
    engine = create_engine(scratch)
    sessions = create_session_factory(engine)
    indexing = SearchIndexing.from_settings(scratch)
    seeder = Seeder(sessions, scratch, Console(quiet=True))
    rng = random.Random(42)
    try:
        leaves = await seeder.categories()
        seeded = 0
        async with api_process(scratch) as api_base:
            redis = Redis.from_url(scratch.redis_url or "")
            await redis.flushdb()
            for size in sorted(sizes):
                if size > seeded:
                    await seeder.products(rng, size - seeded, leaves, first_number=seeded + 1)
                    seeded = size
                    if indexing is not None:
                        await indexing.rebuild(sessions)
                    await settle(scratch)
                # Unmeasured: every API process opens the new index and fills its caches
                # (as one that has served a while has), then a new catalogue version, so
                # that no answer of the warm-up is served from a cache below.
                await asyncio.to_thread(
                    run_load_processes,
                    f"warm-up at {size:,} products",
                    api_base,
                    SEARCH,
                    concurrency=concurrency,
                    duration=WARM_UP_SECONDS,
                    processes=generators,
                    seed=3,
                )
                # The API processes hold the version: they are told, as a write tells them.
                version = await CatalogCache(redis).invalidate()
                async with sessions() as session:
                    await announce_version(session, version)
                cpu = StackProcesses({**stack_processes(api_base).roles, **database})
                label = f"search at {size:,} products"
                run = partial(_run, label, api_base, SEARCH, cpu, duration, concurrency, generators)
                result, spread = await asyncio.to_thread(_spread_run, run, cpu, api_base)
                points.append(ScalingPoint(size, result, spread))
            await redis.flushdb()
            await redis.aclose()
    finally:
        await engine.dispose()
    return points
