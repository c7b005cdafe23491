"""The API's own cost of a cached catalogue read, the app called in-process.

``python -m bench.catalog_inprocess --data-dir DIR`` builds the app on the settings of the
`shop dev` stack in DIR (seeded), reads 50 listing pages and 50 products three times (so
every answer is cached), then 3,000 of each and of ``/health`` (our middleware with no
work), each an ASGI call without a server or a socket; then 1,000 products read the
first time (by slug, as `shop bench catalog` reads them: none read before by this process,
nor in the last minute by another), and 1,000 searches as `shop bench catalog` draws them,
all different and new to the process, and the same 1,000 again. It prints the process's
CPU time per request and cProfile's count of Python calls per request (over 500: for
first reads, 500 others, also new). ``--first-searches N`` measures only N first
searches, with the garbage collector's passes. No server,
generator or neighbour shares the figure, which a shared machine blurs less than it
blurs throughput (docs/benchmarks.md *Catalogue reads*)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import random
import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Message

from api.app import create_app
from bench.catalog import SEARCH
from core.settings import load_settings

WARM_ROUNDS = 3
PROFILED = 500
SEARCHES = 1_000
FIRST_DETAILS = 1_000


async def call(app: FastAPI, path: str, query: bytes = b"") -> tuple[int, bytes]:
    """One GET through the whole ASGI app: its status and body."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


async def measure_calls(
    app: FastAPI,
    label: str,
    timed: list[tuple[str, bytes]],
    profiled: list[tuple[str, bytes]],
    top: int = 0,
) -> None:
    """Print the CPU time per request over ``timed`` and the Python calls per request over
    ``profiled`` (the same calls, or others where a first read is measured)."""
    started = time.process_time()
    for path, query in timed:
        await call(app, path, query)
    cpu_ms = (time.process_time() - started) / len(timed) * 1000
    profile = cProfile.Profile()
    profile.enable()
    for path, query in profiled:
        await call(app, path, query)
    profile.disable()
    python_calls = pstats.Stats(profile).total_calls / len(profiled)  # type: ignore[attr-defined]
    print(f"{label:16s} CPU {cpu_ms:.3f} ms a request, {python_calls:,.0f} Python calls")
    if top:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(top)


def searches(count: int) -> list[tuple[str, bytes]]:
    """``count`` different searches as `shop bench catalog` draws them, from a seed of the
    clock: none read before by this process, nor (a minute apart) cached in Redis."""
    target = SEARCH(random.Random(time.time_ns()))
    drawn: dict[str, None] = {}
    while len(drawn) < count:
        drawn[target()] = None
    return [(path, query.encode()) for path, _, query in (t.partition("?") for t in drawn)]


async def unread_slugs(app: FastAPI, count: int) -> list[str]:
    """``count`` products' slugs from listing pages drawn from a seed of the clock, read
    filtered by stock (``inStock``): those pages are neither cached nor read through the
    process's stock view, so neither holds the products afterwards. Active products, in
    stock and not, in a random order."""
    rng = random.Random(time.time_ns())
    status, body = await call(app, "/api/products", b"limit=1")
    assert status == 200, body
    last_page = max(1, min(10_000, orjson.loads(body)["total"] // 100))
    slugs: dict[str, None] = {}
    while len(slugs) < count:
        in_stock = rng.choice(["true", "false"])
        query = f"inStock={in_stock}&limit=100&page={rng.randint(1, last_page)}&sort=price_asc"
        status, body = await call(app, "/api/products", query.encode())
        assert status == 200, body
        for item in orjson.loads(body)["items"]:
            slugs[item["slug"]] = None
    drawn = list(slugs)[:count]
    rng.shuffle(drawn)
    return drawn


async def measure(data_dir: Path, requests: int, top: int) -> None:
    app = create_app(load_settings(data_dir))
    async with app.router.lifespan_context(app):
        state = app.state.shop
        status, body = await call(app, "/api/products", b"limit=100")
        assert status == 200, body
        keys = [p["id"] for p in orjson.loads(body)["items"]][:50]
        rng = random.Random(1)
        sorts = ["newest", "price_asc", "rating"]
        pages = [
            f"page={rng.randint(1, 50)}&limit=20&sort={rng.choice(sorts)}".encode()
            for _ in range(50)
        ]
        await asyncio.sleep(1.0)  # the LISTEN connection is in place
        for _ in range(WARM_ROUNDS):
            for page in pages:
                assert (await call(app, "/api/products", page))[0] == 200
            for key in keys:
                assert (await call(app, f"/api/products/{key}"))[0] == 200
        await state.ingest.flush()
        workloads = {
            "listing": [("/api/products", pages[n % len(pages)]) for n in range(requests)],
            "product detail": [
                (f"/api/products/{keys[n % len(keys)]}", b"") for n in range(requests)
            ],
            "/health": [("/health", b"") for _ in range(requests)],
        }
        for label, calls in workloads.items():
            await measure_calls(app, label, calls, calls[:PROFILED])
        # A product read the first time by this process (the row, its price and stock,
        # rendering, the product_view event); the first reads profiled are others.
        slugs = await unread_slugs(app, FIRST_DETAILS + PROFILED)
        unread = [(f"/api/products/{slug}", b"") for slug in slugs]
        first, profiled = unread[:FIRST_DETAILS], unread[FIRST_DETAILS:]
        await measure_calls(app, "detail, first", first, profiled, top)
        await state.ingest.flush()
        # A search read the first time (the index, the page's rows, to_wire), then the
        # same searches again; the first reads profiled are others, also new.
        drawn = searches(SEARCHES + PROFILED)
        first, profiled = drawn[:SEARCHES], drawn[SEARCHES:]
        await measure_calls(app, "search, first", first, profiled)
        await measure_calls(app, "search, again", first, first[:PROFILED])
        await state.ingest.flush()


class CollectorPauses:
    """The garbage collector's passes while installed, by generation: how many, and the
    longest and total CPU time they took (``gc.callbacks``; the event loop stands still
    for at least that long, more when a neighbour takes the core)."""

    def __init__(self) -> None:
        self.passes: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.passes[info["generation"]].append(time.process_time() - self._started)

    def __str__(self) -> str:
        return ", ".join(
            f"gen{gen} {len(took)} passes, longest {max(took, default=0) * 1000:.1f} ms, "
            f"{sum(took) * 1000:.0f} ms in all"
            for gen, took in self.passes.items()
        )


async def measure_first_searches(data_dir: Path, count: int, *, frozen: bool) -> None:
    """``count`` first searches only, after the catalogue version moved (so no page of
    theirs is in Redis either): CPU per search, the worst latency, and the collector's
    passes, with the start-up heap frozen (``cli.serve.settle_heap``, as ``shop api``
    does) or not."""
    from cli.serve import settle_heap
    from services.catalog.cache import CatalogCache
    from services.catalog.versions import announce_version

    app = create_app(load_settings(data_dir))
    async with app.router.lifespan_context(app):
        state = app.state.shop
        await asyncio.sleep(1.0)  # the LISTEN connection is in place
        version = await CatalogCache(state.redis).invalidate()
        async with state.sessions() as session:
            await announce_version(session, version)
        await asyncio.sleep(0.5)
        if frozen:
            settle_heap(app)
        pauses = CollectorPauses()
        gc.callbacks.append(pauses)
        latencies = []
        started = time.process_time()
        for path, query in searches(count):
            began = time.perf_counter()
            status, body = await call(app, path, query)
            assert status == 200, body
            latencies.append(time.perf_counter() - began)
        cpu_ms = (time.process_time() - started) / count * 1000
        gc.callbacks.remove(pauses)
        latencies.sort()
        print(
            f"first searches ({'frozen' if frozen else 'plain'} heap): CPU {cpu_ms:.3f} ms a "
            f"search, p99 {latencies[int(count * 0.99)] * 1000:.1f} ms, worst "
            f"{latencies[-1] * 1000:.1f} ms; collector: {pauses}"
        )
        await state.ingest.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a running `shop dev`'s")
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument(
        "--top", type=int, default=0, help="print the first detail reads' N costliest functions"
    )
    parser.add_argument(
        "--first-searches",
        type=int,
        default=0,
        help="only this many first searches (and the collector's passes), instead",
    )
    parser.add_argument("--plain-heap", action="store_true", help="with --first-searches")
    args = parser.parse_args()
    if args.first_searches:
        asyncio.run(
            measure_first_searches(args.data_dir, args.first_searches, frozen=not args.plain_heap)
        )
    else:
        asyncio.run(measure(args.data_dir, args.requests, args.top))


if __name__ == "__main__":
    main()
