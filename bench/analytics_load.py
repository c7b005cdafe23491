"""Loading ``shop bench analytics``'s events and bringing its rollups up to date, in a
scratch database that ``--keep-database`` may keep between runs: what a kept database
holds (``bench_analytics_load``), a load (one process or several, with the events'
indexes in place or deferred), the catalogue the events name, the rollups' rebuild."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.analytics_copy import LoadFigures, copy_events, copy_parallel
from bench.analytics_data import EventGenerator
from core.settings import Settings

HOUR = timedelta(hours=1)


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


INDEXES = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS index_def,
       con.conname AS constraint_name, pg_get_constraintdef(con.oid) AS constraint_def
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
WHERE i.indrelid = 'analytics_events'::regclass ORDER BY c.relname
"""


async def drop_event_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop the events' indexes (the primary key too); the statements that rebuild them."""
    rebuild = []
    for row in await conn.fetch(INDEXES):
        if row["constraint_name"]:
            await conn.execute(f'ALTER TABLE analytics_events DROP CONSTRAINT "{row["name"]}"')
            rebuild.append(
                f'ALTER TABLE analytics_events ADD CONSTRAINT "{row["constraint_name"]}" '
                f"{row['constraint_def']}"
            )
        else:
            await conn.execute(f'DROP INDEX "{row["name"]}"')
            rebuild.append(row["index_def"])
    return rebuild


async def load_events(
    conn: asyncpg.Connection,
    generator: EventGenerator,
    count: int,
    console: Console,
    *,
    defer_indexes: bool = False,
    workers: int = 1,
    dsn: str = "",
) -> LoadFigures:
    rebuild = await drop_event_indexes(conn) if defer_indexes else []
    with _bar(console) as bar:
        task = bar.add_task(f"COPY {count:,} events", total=count)
        if workers == 1:
            figures = await copy_events(
                conn, generator, count, advance=lambda n: bar.advance(task, n)
            )
        else:
            figures = await copy_parallel(
                dsn,
                generator.catalogue,
                people=len(generator.people),
                seed=generator.seed,
                part=generator.part,
                now=generator.now,
                count=count,
                workers=workers,
                advance=lambda n: bar.advance(task, n),
            )
    started = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for statement in rebuild:
        await conn.execute(statement)
    if rebuild:
        figures = LoadFigures(figures.events, figures.seconds, time.perf_counter() - started)
    await conn.execute("VACUUM (ANALYZE) analytics_events")
    return figures


LOADS_TABLE = """
CREATE TABLE IF NOT EXISTS bench_analytics_load (
    part integer PRIMARY KEY, events bigint NOT NULL, window_end timestamptz NOT NULL
)
"""


@dataclass(frozen=True)
class Loaded:
    """What a kept database already holds: the parts loaded, their events, the load's
    ``now`` (the window's end, which fixes who has signed up by then)."""

    parts: int
    events: int
    window_end: datetime | None


async def loaded_so_far(conn: asyncpg.Connection) -> Loaded:
    await conn.execute(LOADS_TABLE)
    row = await conn.fetchrow(
        "SELECT count(*) AS parts, coalesce(sum(events), 0) AS events, "
        "min(window_end) AS window_end FROM bench_analytics_load"
    )
    assert row is not None
    return Loaded(int(row["parts"]), int(row["events"]), row["window_end"])


async def seed_catalogue(scratch: Settings, products: int, seed: int, console: Console) -> None:
    from cli.seed import Seeder
    from core.db import create_engine, create_session_factory

    engine = create_engine(scratch)
    try:
        seeder = Seeder(create_session_factory(engine), scratch, console)
        leaves = await seeder.categories()
        await seeder.products(random.Random(f"{seed}:products"), products, leaves)
    finally:
        await engine.dispose()


async def refresh_rollups(settings: Settings, since: datetime) -> str:
    """On a kept database: the rollup schedule's own step, timed, which recomputes only
    what changed since the last run; or, when no run has built the rollups yet (a run
    stopped before), every hour from ``since``."""
    from core.db import create_engine, create_session_factory
    from services.analytics.rollups import RollupService

    engine = create_engine(settings)
    started = time.perf_counter()
    try:
        service = RollupService(create_session_factory(engine))
        built = await service.watermark() is not None
        outcome = await service.refresh() if built else None
    finally:
        await engine.dispose()
    if outcome is None:
        return await bring_rollups_up_to_date(settings, since)
    return (
        f"rollups refreshed in {time.perf_counter() - started:,.1f} s "
        f"({outcome.hours:,} hours recomputed)"
    )


async def bring_rollups_up_to_date(settings: Settings, since: datetime, streams: int = 3) -> str:
    """Recompute the hourly rollups the dashboard reads, after a bulk load, timed.

    The schedule's own step (``RollupService.refresh``) follows ``received_at`` past its
    watermark; a load of history written with its past receipt times (as here, and as an
    import would be) is behind the watermark after the first run, so every hour from
    ``since`` is rebuilt (``RollupService.rebuild``, ``streams`` groups of days side by
    side), as an operator backfilling an import would."""
    from core.db import create_engine, create_session_factory
    from services.analytics.rollups import RollupService

    engine = create_engine(settings)
    started = time.perf_counter()
    first = since.replace(minute=0, second=0, microsecond=0)
    hours = [first + timedelta(hours=n) for n in range(int((datetime.now(UTC) - first) / HOUR) + 1)]
    try:
        outcome = await RollupService(create_session_factory(engine)).rebuild(
            hours, streams=streams
        )
    finally:
        await engine.dispose()
    return (
        f"rollups brought up to date in {time.perf_counter() - started:,.1f} s "
        f"({outcome.hours:,} hours recomputed)"
    )
