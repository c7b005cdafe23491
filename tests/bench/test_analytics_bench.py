"""``shop bench analytics``: the event generator writes what it says, with a sane shape,
into the real table (a small load, rolled back); an endpoint that does not answer in
time is reported against its name and the run goes on."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.analytics import (
    ENDPOINTS,
    SizeResult,
    TableSizes,
    Timing,
    table_sizes,
    time_endpoints,
)
from bench.analytics_copy import LoadFigures, copy_events, load_catalogue
from bench.analytics_data import WINDOW_DAYS, CatalogueProduct, EventGenerator
from bench.load import LoadResult
from cli.seed import Seeder
from cli.stack.process import free_port
from core.db import SessionFactory
from core.settings import Settings
from services.analytics.ranges import resolve_range
from tests.factories import staff_headers
from tests.live import live_api

EVENTS = 5000
PEOPLE = 400
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def conn(
    db_sessions: SessionFactory, settings: Settings
) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection under the test's rolled-back transaction, with a catalogue."""
    seeder = Seeder(db_sessions, settings, Console(quiet=True))
    leaves = await seeder.categories()
    await seeder.products(random.Random(3), 40, leaves)
    async with db_sessions() as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        yield raw.driver_connection


def test_the_same_seed_draws_the_same_events_and_exactly_as_many() -> None:
    catalogue = [CatalogueProduct(f"prod_{n}", f"cat_{n % 4}", 1000 + n, "USD") for n in range(9)]
    first = list(EventGenerator(catalogue, people=50, seed=5, now=NOW).rows(777))
    again = list(EventGenerator(catalogue, people=50, seed=5, now=NOW).rows(777))
    other = list(EventGenerator(catalogue, people=50, seed=5, part=1, now=NOW).rows(777))
    assert len(first) == 777
    assert first == again
    assert first != other
    assert not any(row[1] == "user_created" for row in other)  # one sign-up a person


async def test_a_small_load_writes_every_event_with_a_realistic_shape(
    conn: asyncpg.Connection,
) -> None:
    catalogue = await load_catalogue(conn)
    assert len(catalogue) >= 40
    generator = EventGenerator(catalogue, people=PEOPLE, seed=11, now=NOW)
    ours = sorted({p.person_id(NOW) for p in generator.people})
    before = await conn.fetchval("SELECT count(*) FROM analytics_events")
    advanced: list[int] = []
    figures = await copy_events(conn, generator, EVENTS, chunk=1500, advance=advanced.append)

    assert figures.events == EVENTS
    assert figures.rate > 0
    assert advanced == [1500, 1500, 1500, 500]
    assert await conn.fetchval("SELECT count(*) FROM analytics_events") == before + EVENTS
    mine = "FROM analytics_events WHERE person_id = ANY($1::text[])"
    assert await conn.fetchval(f"SELECT count(*) {mine}", ours) == EVENTS

    # People: most of them act; members, guests and converters are all there.
    persons = await conn.fetchval(f"SELECT count(DISTINCT person_id) {mine}", ours)
    assert PEOPLE * 0.6 <= persons <= PEOPLE
    kinds = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE person_id LIKE 'anon:%') AS guests,
                   count(*) FILTER (WHERE person_id LIKE 'user_%' AND user_id IS NULL)
                       AS before_sign_in,
                   count(*) FILTER (WHERE user_id IS NOT NULL AND anonymous_id IS NULL)
                       AS members,
                   count(*) FILTER (WHERE event = 'user_created') AS signups
            {mine}""",
        ours,
    )
    assert all(kinds[k] > 0 for k in ("guests", "before_sign_in", "members", "signups"))
    links = generator.identities()
    assert links
    linked = await conn.fetchval(
        "SELECT count(*) FROM analytics_identities WHERE anonymous_id = ANY($1::text[])",
        [anonymous_id for anonymous_id, _, _ in links],
    )
    assert linked == len(links)
    # Only signed-in people check out.
    assert not await conn.fetchval(
        f"SELECT count(*) {mine} AND event = 'checkout_start' AND user_id IS NULL", ours
    )

    # The funnel drops off step by step, per session, about 100 → 25 → 12 → 10 → 8.
    steps = await conn.fetchrow(
        f"""SELECT count(DISTINCT session_id) FILTER (WHERE event = 'product_view') AS views,
                   count(DISTINCT session_id) FILTER (WHERE event = 'add_to_cart') AS carts,
                   count(*) FILTER (WHERE event = 'checkout_start') AS checkouts,
                   count(*) FILTER (WHERE event = 'payment_start') AS payments,
                   count(*) FILTER (WHERE event = 'order_complete') AS orders
            {mine}""",
        ours,
    )
    assert 0.17 < steps["carts"] / steps["views"] < 0.33
    assert 0.06 < steps["checkouts"] / steps["views"] < 0.18
    assert steps["checkouts"] >= steps["payments"] >= steps["orders"] > 0
    assert 0.7 < steps["payments"] / steps["checkouts"] < 0.95
    assert 0.65 < steps["orders"] / steps["payments"] < 0.92
    funnel = [
        await conn.fetchval(f"SELECT count(DISTINCT person_id) {mine} AND event = $2", ours, step)
        for step in ("product_view", "add_to_cart", "checkout_start", "order_complete")
    ]
    assert funnel == sorted(funnel, reverse=True)
    assert funnel[-1] > 0

    # Views name catalogue products; sources and referrers are there.
    unknown = await conn.fetchval(
        f"""SELECT count(*) {mine} AND event = 'product_view'
            AND NOT EXISTS (SELECT 1 FROM products p WHERE p.id = properties->>'productId')""",
        ours,
    )
    assert unknown == 0
    assert await conn.fetchval(f"SELECT count(*) {mine} AND properties ? 'utm_source'", ours)
    assert await conn.fetchval(f"SELECT count(*) {mine} AND referrer IS NOT NULL", ours)
    # COPY stores each event's breakdown inputs too (the database's trigger): the
    # generator's source, else its referrer's host, else direct, and the ids it names.
    breakdown = await conn.fetch(
        f"""SELECT source, count(*) AS n,
                   bool_and(source = coalesce(properties->>'utm_source',
                                              substring(referrer from '://([^/]+)/'), 'direct')
                            AND category_id IS NOT DISTINCT FROM properties->>'categoryId'
                            AND product_id IS NOT DISTINCT FROM properties->>'productId')
                       AS as_drawn
            {mine} GROUP BY source""",
        ours,
    )
    assert all(row["as_drawn"] for row in breakdown)
    assert {"direct", "google", "news.ycombinator.com"} <= {row["source"] for row in breakdown}

    # Time: spread over the 90 days, busier in the evening than at night, received late
    # by no more than the API's 24 hours.
    spread = await conn.fetchrow(
        f"""SELECT min(created_at) AS first, max(created_at) AS last,
                   count(*) FILTER (WHERE extract(hour FROM created_at) BETWEEN 2 AND 4)
                       AS night,
                   count(*) FILTER (WHERE extract(hour FROM created_at) BETWEEN 18 AND 20)
                       AS evening,
                   bool_and(received_at >= created_at
                            AND received_at < created_at + interval '24 hours') AS received
            {mine}""",
        ours,
    )
    assert NOW - timedelta(days=WINDOW_DAYS) <= spread["first"] < NOW - timedelta(days=80)
    assert NOW - timedelta(days=3) < spread["last"] < NOW
    assert spread["evening"] > 2 * spread["night"]
    assert spread["received"]

    sizes = await table_sizes(conn)
    assert sizes.rows == before + EVENTS
    assert sizes.heap_bytes > 0
    assert sizes.index_bytes["analytics_events_event_created_at_idx"] > 0
    assert "analytics_events_person_id_created_at_idx" in "\n".join(sizes.lines())


def test_a_timing_reports_its_target_and_an_endpoint_that_is_not_there() -> None:
    dashboard = next(e for e in ENDPOINTS if e.path == "/api/analytics/dashboard")
    fast = LoadResult("d", 100, 2.0, 4, [0.01 + n / 10_000 for n in range(100)], {200: 100})
    slow = LoadResult("d", 100, 20.0, 4, [0.15 + n / 10_000 for n in range(100)], {200: 100})
    missing = LoadResult("d", 10, 0.1, 4, [0.001] * 10, {404: 10})
    assert Timing(dashboard, fast).line(10_000_000).endswith("target p95 < 100 ms: met")
    assert Timing(dashboard, slow).line(10_000_000).endswith("target p95 < 100 ms: MISSED")
    assert "set for 10,000,000" in Timing(dashboard, fast).line(1_000_000)
    assert "not measured: answered {404: 10}" in Timing(dashboard, missing).line(10)


def test_an_uncached_dashboard_asks_for_other_ranges_over_the_same_hours() -> None:
    uncached = next(e for e in ENDPOINTS if e.uncached_days == 30)
    now = datetime(2026, 12, 4, 19, 25, tzinfo=UTC)
    url = uncached.urls("http://api", now)
    asked = [url() for _ in range(3)]
    assert len(set(asked)) == 3
    preset = resolve_range("30d", None, None, now)
    for one in asked:
        query = parse_qs(urlsplit(one).query)
        start = datetime.fromisoformat(query["from"][0])
        end = datetime.fromisoformat(query["to"][0])
        assert end - start == timedelta(days=30)
        # The hours starting in [from, to) are the preset's: from its first to its last.
        assert preset.start - timedelta(hours=1) < start < preset.start
        assert preset.end - timedelta(hours=1) < end < preset.end


def test_requests_without_an_answer_are_counted_against_their_endpoint() -> None:
    funnel = next(e for e in ENDPOINTS if e.params == "timeRange=7d" and "funnel" in e.path)
    some = LoadResult("f", 8, 2.0, 1, [0.2] * 8, {200: 8}, {"timeout": 2})
    none = LoadResult("f", 0, 2.0, 1, [], {}, {"timeout": 3, "ConnectError": 1})
    partly = Timing(funnel, some, 60.0)
    # The answers alone would meet the target: the two that never answered did not.
    assert partly.line(10_000_000).endswith("2 timed out   target p95 < 1,000 ms: MISSED")
    assert partly.unanswered_line() == (
        "  ! funnel, 7 days (/api/analytics/funnel?timeRange=7d): 2 request(s) without an "
        "answer within the 60 s timeout (2 timed out, warm-up included); 8 answered"
    )
    nothing = Timing(funnel, none, 0.5)
    assert nothing.line(10).endswith(
        "not measured: 3 timed out, 1 failed (ConnectError), none answered"
    )
    answered = Timing(funnel, LoadResult("f", 8, 2.0, 1, [0.2] * 8, {200: 8}))
    assert answered.unanswered_line() is None
    size = SizeResult(10, LoadFigures(0, 0.0), TableSizes(10, 1, {}), "rollups", [partly, answered])
    assert size.unanswered == 2
    assert [line for line in size.lines() if line.startswith("  !")] == [partly.unanswered_line()]


async def test_a_funnel_that_does_not_answer_in_time_is_named_and_the_run_goes_on(
    settings: Settings, engine: AsyncEngine
) -> None:
    """The real API over HTTP, with the events' table locked, so every funnel request
    waits (until the lock goes) past the bench's timeout, whatever the machine's speed;
    ``/health`` reads no table and answers. The old bench raised ``ReadTimeout``."""
    health = next(e for e in ENDPOINTS if e.path == "/health")
    funnel = next(e for e in ENDPOINTS if e.params == "timeRange=7d" and "funnel" in e.path)
    served = settings.model_copy(update={"shop_api_port": free_port()})
    async with live_api(served) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            headers = await staff_headers(http, engine)
        async with engine.connect() as locker:
            await locker.begin()
            await locker.execute(text("LOCK TABLE analytics_events IN ACCESS EXCLUSIVE MODE"))
            try:
                timings = await time_endpoints(
                    base, headers, 3, 1, request_timeout=0.5, endpoints=(health, funnel, health)
                )
            finally:
                await locker.rollback()
    assert [t.endpoint for t in timings] == [health, funnel, health]
    first, slow, after = (t.result for t in timings)
    assert first.statuses == after.statuses == {200: 3}
    assert not first.errors
    assert not after.errors
    assert slow.errors == {"timeout": 4}  # the warm-up and the three measured
    assert slow.requests == 0
    report = timings[1].unanswered_line()
    assert report is not None
    assert report.startswith("  ! funnel, 7 days (/api/analytics/funnel?timeRange=7d): 4 ")
    assert "within the 0.5 s timeout (4 timed out" in report
    assert "none answered" in timings[1].line(10)
    assert "p95" in timings[2].line(10)
