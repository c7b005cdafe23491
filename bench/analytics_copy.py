"""Writing ``bench.analytics_data``'s events with PostgreSQL COPY: the catalogue they
name read, one stream COPYed in chunks (the next drawn while the last is written), or
several drawn by processes side by side, each on a connection of its own."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bench.analytics_data import COLUMNS, CatalogueProduct, EventGenerator, EventRow


@dataclass(frozen=True)
class LoadFigures:
    events: int
    seconds: float
    index_seconds: float | None = None  # indexes built after the load, when deferred

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def load_catalogue(conn: asyncpg.Connection) -> list[CatalogueProduct]:
    rows = await conn.fetch(
        "SELECT id, category_id, price, currency FROM products WHERE active ORDER BY id"
    )
    return [CatalogueProduct(r["id"], r["category_id"], r["price"], r["currency"]) for r in rows]


async def copy_events(
    conn: asyncpg.Connection,
    generator: EventGenerator,
    count: int,
    *,
    chunk: int = 50_000,
    advance: Callable[[int], None] | None = None,
) -> LoadFigures:
    """COPY ``count`` events in chunks, the next chunk drawn while PostgreSQL writes the
    last one; then the identity links (an upsert: later loads find them there)."""
    rows = generator.rows(count)
    started = time.perf_counter()

    def draw() -> list[EventRow]:
        return list(itertools.islice(rows, chunk))

    batch = draw()
    while batch:
        writing = asyncio.ensure_future(
            conn.copy_records_to_table("analytics_events", records=batch, columns=COLUMNS)
        )
        following = await asyncio.to_thread(draw)
        await writing
        if advance is not None:
            advance(len(batch))
        batch = following
    identities = generator.identities()
    for start in range(0, len(identities), 10_000):
        await conn.executemany(
            "INSERT INTO analytics_identities (anonymous_id, user_id, linked_at) "
            "VALUES ($1, $2, $3) ON CONFLICT (anonymous_id) DO NOTHING",
            identities[start : start + 10_000],
        )
    return LoadFigures(count, time.perf_counter() - started)


@dataclass(frozen=True)
class StreamJob:
    """One process's share of a parallel load: a generator's arguments and its count."""

    dsn: str
    catalogue: list[CatalogueProduct]
    people: int
    seed: int
    part: int
    stream: int
    now: datetime
    count: int


def _copy_stream(job: StreamJob) -> int:
    """In a worker process: draw and COPY one stream on a connection of its own."""

    async def copy() -> int:
        conn = await asyncpg.connect(job.dsn)
        try:
            generator = EventGenerator(
                job.catalogue,
                people=job.people,
                seed=job.seed,
                part=job.part,
                now=job.now,
                stream=job.stream,
            )
            await copy_events(conn, generator, job.count)
        finally:
            await conn.close()
        return job.count

    return asyncio.run(copy())


async def copy_parallel(
    dsn: str,
    catalogue: list[CatalogueProduct],
    *,
    people: int,
    seed: int,
    part: int,
    now: datetime,
    count: int,
    workers: int,
    advance: Callable[[int], None] | None = None,
) -> LoadFigures:
    """``count`` events drawn by ``workers`` processes side by side (the generator, pure
    Python, is what limits one stream), each COPYing its share on its own connection."""
    shares = [count // workers + (1 if n < count % workers else 0) for n in range(workers)]
    jobs = [
        StreamJob(dsn, catalogue, people, seed, part, stream, now, share)
        for stream, share in enumerate(shares)
        if share
    ]
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    # spawn: a forked child would inherit this process's running event loop.
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in asyncio.as_completed(
            [loop.run_in_executor(pool, _copy_stream, job) for job in jobs]
        ):
            written = await done
            if advance is not None:
                advance(written)
    return LoadFigures(count, time.perf_counter() - started)
