"""``shop bench analytics``: load 1 million, then 10 million analytics events for 100,000
people (``bench.analytics_data``), and after each load time the reading endpoints over
HTTP with a staff token, against a ceiling measured in the same run.

Everything happens in a scratch database on the stack's PostgreSQL (dropped afterwards)
behind a scratch ``shop api`` process, so the stack's own data is left alone: migrate,
seed a catalogue (the events name its products), then per size:

1. COPY the events (chunks of 50,000, the next drawn while PostgreSQL writes the last):
   events/s, then ``VACUUM (ANALYZE)`` as autovacuum would after such a load;
2. the table's and each index's size on disk;
3. bring the hourly rollups and the event links up to date (``bring_rollups_up_to_date``),
   timed, then ``VACUUM (ANALYZE)`` the links;
4. ``GET /health`` (the ceiling: what the API answers with no work), the dashboard over
   7 and 30 days, the funnel over 7 and 90 days (ordered, strict, and with a day's step
   windows) and the retention table (by first order, and by first visit): p50/p95/p99 of
   ``--requests`` requests, ``--concurrency`` at a time, against the issue's targets
   (dashboard p95 < 100 ms and every funnel over 7 days < 1 s, at 10 million events).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from rich.console import Console

from bench.analytics_copy import LoadFigures, load_catalogue
from bench.analytics_data import WINDOW_DAYS, EventGenerator
from bench.load import LoadResult, run_load
from core.settings import Settings

DASHBOARD_P95 = 0.100
FUNNEL_P95 = 1.0
TARGET_EVENTS = 10_000_000
REQUEST_TIMEOUT = 60.0  # seconds, ``--timeout``
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    params: str = ""
    target_p95: float | None = None  # seconds, at TARGET_EVENTS
    # A dashboard never answered from the API's cache: each request asks for a custom
    # range of this many days, a few seconds off the preset's, over the very same hours.
    uncached_days: int | None = None

    def url(self, base: str) -> str:
        return f"{base}{self.path}" + (f"?{self.params}" if self.params else "")

    def urls(self, base: str, now: datetime) -> Callable[[], str]:
        if self.uncached_days is None:
            return _always(self.url(base))
        end = now.replace(minute=0, second=0, microsecond=0) + HOUR
        length = timedelta(days=self.uncached_days)
        asked = itertools.count(1)

        def url() -> str:
            # 1 to 3,599 s before the preset's end: the hours starting in range are the same.
            to = end - timedelta(seconds=1 + next(asked) % 3599)
            return f"{base}{self.path}?from={(to - length).strftime(STAMP)}&to={to.strftime(STAMP)}"

        return url


STAMP = "%Y-%m-%dT%H:%M:%SZ"
# A day between two of the seed's five steps.
STEP_WINDOWS = "1d,1d,1d,1d"
ENDPOINTS = (
    Endpoint("ceiling: GET /health", "/health"),
    Endpoint("dashboard, 7 days", "/api/analytics/dashboard", "timeRange=7d", DASHBOARD_P95),
    Endpoint(
        "dashboard, 7 d, uncached", "/api/analytics/dashboard", "", DASHBOARD_P95, uncached_days=7
    ),
    Endpoint("dashboard, 30 days", "/api/analytics/dashboard", "timeRange=30d", DASHBOARD_P95),
    Endpoint(
        "dashboard, 30 d, uncached", "/api/analytics/dashboard", "", DASHBOARD_P95, uncached_days=30
    ),
    Endpoint("funnel, 7 days", "/api/analytics/funnel", "timeRange=7d", FUNNEL_P95),
    Endpoint(
        "funnel, 7 d, strict", "/api/analytics/funnel", "timeRange=7d&order=strict", FUNNEL_P95
    ),
    Endpoint(
        "funnel, 7 d, step windows",
        "/api/analytics/funnel",
        f"timeRange=7d&stepWindows={STEP_WINDOWS}",
        FUNNEL_P95,
    ),
    Endpoint("funnel, 90 days", "/api/analytics/funnel", "timeRange=90d"),
    Endpoint("funnel, 90 d, strict", "/api/analytics/funnel", "timeRange=90d&order=strict"),
    Endpoint(
        "funnel, 90 d, step windows",
        "/api/analytics/funnel",
        f"timeRange=90d&stepWindows={STEP_WINDOWS}",
    ),
    Endpoint("retention, first order", "/api/analytics/retention"),
    Endpoint("retention, first visit", "/api/analytics/retention", "cohort=first_visit"),
)


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{size:,.0f} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.2f} GB"


def _always(url: str) -> Callable[[], str]:
    return lambda: url


@dataclass(frozen=True)
class TableSizes:
    rows: int
    heap_bytes: int  # the table with its TOAST
    index_bytes: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return self.heap_bytes + sum(self.index_bytes.values())

    def lines(self) -> list[str]:
        per_row = self.total_bytes / self.rows if self.rows else 0
        lines = [
            f"  analytics_events: {self.rows:,} rows, {_bytes(self.total_bytes)} "
            f"({per_row:,.0f} B a row): table {_bytes(self.heap_bytes)}, "
            f"indexes {_bytes(sum(self.index_bytes.values()))}"
        ]
        lines += [f"    {name:<46} {_bytes(size):>10}" for name, size in self.index_bytes.items()]
        return lines


@dataclass(frozen=True)
class Timing:
    endpoint: Endpoint
    result: LoadResult
    timeout: float = REQUEST_TIMEOUT  # seconds the bench waited for each answer

    def _unanswered(self) -> str:
        errors = dict(self.result.errors)
        parts = []
        if timeouts := errors.pop("timeout", 0):
            parts.append(f"{timeouts} timed out")
        parts += [f"{n} failed ({kind})" for kind, n in sorted(errors.items())]
        return ", ".join(parts)

    def line(self, events: int) -> str:
        r = self.result
        label = f"  {self.endpoint.label:<26}"
        if not r.requests and r.failed:
            return f"{label} not measured: {self._unanswered()}, none answered"
        if set(r.statuses) != {200}:
            return f"{label} not measured: answered {dict(sorted(r.statuses.items()))}"
        p95 = r.percentile(95)
        line = (
            f"{label} p50 {r.percentile(50) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   "
            f"p99 {r.percentile(99) * 1000:8.1f} ms   {r.rps:7.1f} req/s"
        )
        if r.failed:
            line += f"   {self._unanswered()}"
        target = self.endpoint.target_p95
        if target is not None:
            # The percentiles are over the requests that answered: with any unanswered,
            # the target is not met whatever they say.
            verdict = "met" if p95 < target and not r.failed else "MISSED"
            at = "" if events >= TARGET_EVENTS else f", set for {TARGET_EVENTS:,}"
            line += f"   target p95 < {target * 1000:,.0f} ms{at}: {verdict}"
        return line

    def unanswered_line(self) -> str | None:
        """The explicit line for an endpoint with requests that got no answer."""
        r = self.result
        if not r.failed:
            return None
        return (
            f"  ! {self.endpoint.label} ({self.endpoint.path}"
            f"{'?' + self.endpoint.params if self.endpoint.params else ''}): "
            f"{r.failed} request(s) without an answer within the {self.timeout:g} s timeout "
            f"({self._unanswered()}, warm-up included); {r.requests} answered"
        )


@dataclass
class SizeResult:
    events: int
    load: LoadFigures
    sizes: TableSizes
    rollups: str
    timings: list[Timing] = field(default_factory=list)

    def _load_line(self) -> str:
        load = self.load
        if not load.events:
            return "  load: none, the kept database held them already"
        done = f"  load: {load.events:,} events in {load.seconds:,.1f} s: {load.rate:,.0f} events/s"
        if load.index_seconds is None:
            return f"{done} (COPY, indexes in place)"
        return (
            f"{done} (COPY without indexes), then the indexes built in {load.index_seconds:,.1f} s"
        )

    def lines(self) -> list[str]:
        return [
            f"{self.events:,} events",
            self._load_line(),
            *self.sizes.lines(),
            f"  {self.rollups}",
            *(t.line(self.events) for t in self.timings),
            *(line for t in self.timings if (line := t.unanswered_line())),
        ]

    @property
    def unanswered(self) -> int:
        return sum(t.result.failed for t in self.timings)


async def table_sizes(conn: asyncpg.Connection) -> TableSizes:
    rows = await conn.fetchval("SELECT count(*) FROM analytics_events")
    heap = await conn.fetchval(
        "SELECT pg_total_relation_size('analytics_events') - pg_indexes_size('analytics_events')"
    )
    indexes = await conn.fetch(
        """
        SELECT c.relname AS name, pg_relation_size(c.oid) AS size
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'analytics_events'::regclass
        ORDER BY size DESC, name
        """
    )
    return TableSizes(int(rows), int(heap), {r["name"]: int(r["size"]) for r in indexes})


async def time_endpoints(
    base: str,
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    *,
    request_timeout: float = REQUEST_TIMEOUT,
    endpoints: tuple[Endpoint, ...] = ENDPOINTS,
) -> list[Timing]:
    """Each endpoint in turn; a request with no answer in ``request_timeout`` seconds is
    counted against its endpoint, and the next endpoint is timed all the same."""
    timings = []
    for endpoint in endpoints:
        result = await run_load(
            endpoint.label,
            endpoint.urls(base, datetime.now(UTC)),
            concurrency=concurrency,
            max_requests=requests,
            duration=120,
            headers=headers,
            request_timeout=request_timeout,
        )
        timings.append(Timing(endpoint, result, request_timeout))
    return timings


async def _answering(base: str, seconds: float = 300) -> None:
    """Wait for the scratch API's ``/health``: on a machine busy with other work its
    start (imports, two processes) can outlast ``api_process``'s own wait."""
    from bench.checkout_setup import BenchError

    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            with suppress(httpx.HTTPError):
                if (await http.get(f"{base}/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"the scratch API at {base} did not answer in {seconds:.0f} s")
            await asyncio.sleep(0.5)


async def run(
    settings: Settings,
    *,
    sizes: list[int],
    people: int,
    products: int,
    seed: int,
    requests: int,
    concurrency: int,
    console: Console,
    say: Callable[[str], None],
    keep_database: str | None = None,
    defer_indexes: bool = False,
    load_workers: int = 1,
    api_workers: int | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
) -> list[SizeResult]:
    """Load each size in turn (growing the same table) and time the endpoints at each.

    With ``keep_database`` the scratch database is kept (``shop_bench_<name>``) and a
    later run reuses it: sizes it already holds are not loaded again, only timed. With
    ``defer_indexes`` the events' indexes are dropped for each load and built after it
    (much faster on a busy machine, but not the rate ingestion would see), and
    ``load_workers`` processes draw the events side by side. A request with no answer in
    ``request_timeout`` seconds is reported against its endpoint
    (``SizeResult.unanswered``), and the run goes on."""
    from redis.asyncio import Redis

    from bench.analytics_load import (
        bring_rollups_up_to_date,
        load_events,
        loaded_so_far,
        refresh_rollups,
        seed_catalogue,
    )
    from bench.catalog import api_process
    from bench.checkout_setup import staff_headers
    from bench.scratch import asyncpg_dsn, database_name, scratch_database

    results: list[SizeResult] = []
    overrides: dict[str, object] = {"analytics_enabled": True}
    if api_workers is not None:
        overrides["shop_api_workers"] = api_workers
    async with scratch_database(settings, keep=keep_database, **overrides) as scratch:
        conn = await asyncpg.connect(asyncpg_dsn(scratch.resolved_database_url or ""))
        redis = Redis.from_url(scratch.redis_url or "")
        try:
            before = await loaded_so_far(conn)
            if not await conn.fetchval("SELECT count(*) FROM products"):
                say(f"scratch database ready; seeding a catalogue of {products:,} products…")
                await seed_catalogue(scratch, products, seed, console)
            else:
                say(f"reusing {database_name(scratch)}: {before.events:,} events loaded")
            say(
                f"funnels in {scratch.analytics_parallelism} share(s) side by side "
                "(ANALYTICS_PARALLELISM)"
            )
            now = before.window_end or datetime.now(UTC)
            catalogue = await load_catalogue(conn)
            async with api_process(scratch, analytics=True) as base:
                await _answering(base)
                loaded, part = before.events, before.parts
                for size in sorted(sizes):
                    if size < loaded:
                        say(f"{size:,} events: skipped, the kept database holds {loaded:,}")
                        continue
                    if size == loaded:
                        figures = LoadFigures(0, 0.0)
                        rollups = await refresh_rollups(scratch, now - timedelta(days=WINDOW_DAYS))
                    else:
                        generator = EventGenerator(
                            catalogue, people=people, seed=seed, part=part, now=now
                        )
                        figures = await load_events(
                            conn,
                            generator,
                            size - loaded,
                            console,
                            defer_indexes=defer_indexes,
                            workers=load_workers,
                            dsn=asyncpg_dsn(scratch.resolved_database_url or ""),
                        )
                        await conn.execute(
                            "INSERT INTO bench_analytics_load VALUES ($1, $2, $3)",
                            part,
                            size - loaded,
                            generator.now,
                        )
                        loaded, part = size, part + 1
                        rollups = await bring_rollups_up_to_date(scratch, generator.start)
                        # The rebuild relinked every event (``links.py``): marked
                        # all-visible, as for the events, so strict funnels read index-only.
                        await conn.execute("VACUUM (ANALYZE) analytics_event_links")
                    result = SizeResult(size, figures, await table_sizes(conn), rollups)
                    await redis.flushdb()  # no answer cached at the last size
                    say(f"{size:,} events loaded; timing the endpoints…")
                    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                        headers = await staff_headers(http, scratch)
                    result.timings = await time_endpoints(
                        base, headers, requests, concurrency, request_timeout=request_timeout
                    )
                    for line in result.lines():
                        say(line)
                    results.append(result)
        finally:
            await redis.flushdb()
            await redis.aclose()
            await conn.close()
    return results
