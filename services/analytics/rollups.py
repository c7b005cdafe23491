"""Hourly rollups, kept by a Temporal Schedule every minute (``AnalyticsRollupWorkflow``).

Each run finds the hours touched since its watermark (events received, orders and
payments changed, refunds made) and recomputes exactly those hours from raw rows: delete
and insert, one transaction per hour, so a run repeated (or retried) gives the same rows.
A late event (its ``created_at`` up to 24 h back) is received now, so its hour is
recomputed. Rows written by a transaction that began before the watermark but committed
after it are caught by reading ``OVERLAP`` back from the watermark."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from models.analytics_rollups import ANY_EVENT
from services.analytics import bitmaps
from services.analytics.links import LinkRepository, batches

STATE = "hourly"
OVERLAP = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# An order is a sale once paid: confirmed or later, or its payment captured (an order
# cancelled after capture stays a sale; its refund counts as a refund, by refund time).
SOLD = """
(o.status IN ('confirmed', 'fulfillment_queued', 'partially_shipped', 'shipped', 'delivered')
 OR EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.amount_captured > 0))
"""

TOUCHED_HOURS = """
SELECT date_trunc('hour', created_at, 'UTC') FROM analytics_events WHERE received_at > :since
UNION
SELECT date_trunc('hour', o.created_at, 'UTC') FROM orders o WHERE o.updated_at > :since
UNION
SELECT date_trunc('hour', o.created_at, 'UTC')
FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.updated_at > :since
UNION
SELECT date_trunc('hour', o.created_at, 'UTC')
FROM analytics_events a JOIN orders o ON o.id = a.properties ->> 'orderId'
WHERE a.received_at > :since AND a.properties ? 'orderId'
"""
# A refund that failed later (``payment.refund_failed``: the card's bank sent it back) is
# counted back at the hour it failed, as a refund counts at the hour it was made: the
# refund's own outbox row may have been pruned by then, its hour is never recomputed.
REFUND_TYPES = "('payment.refunded', 'payment.refund_failed')"
TOUCHED_REFUND_HOURS = f"""
SELECT DISTINCT date_trunc('hour', created_at, 'UTC') FROM outbox
WHERE type IN {REFUND_TYPES} AND created_at > :since
"""
# In person order: hours recomputed side by side (``rebuild``) take the new rows' locks in
# one order, so they wait for each other rather than deadlock.
FIRST_ORDER = "min(created_at) FILTER (WHERE event = 'order_complete')"
NUMBER_PEOPLE = f"""
INSERT INTO analytics_people (person_id, first_seen_at, first_order_at)
SELECT person_id, min(created_at), {FIRST_ORDER} FROM analytics_events
WHERE created_at >= :start AND created_at < :end
GROUP BY person_id ORDER BY person_id
ON CONFLICT DO NOTHING
"""
# A person's first visit and first order only move earlier as events arrive (a late
# one, or a guest's linked at sign-in). Only the rows that move are locked, in person
# order; ``ON CONFLICT DO UPDATE`` above would lock every known person of the hour, and
# the hours a rebuild recomputes side by side would queue on each other.
EARLIER_FIRSTS = f"""
WITH hour AS (
  SELECT person_id, min(created_at) AS first_at, {FIRST_ORDER} AS order_at
  FROM analytics_events
  WHERE created_at >= :start AND created_at < :end GROUP BY person_id
), moved AS (
  SELECT p.person_id, h.first_at, h.order_at FROM analytics_people p JOIN hour h USING (person_id)
  WHERE p.first_seen_at IS NULL OR h.first_at < p.first_seen_at
    OR h.order_at < p.first_order_at OR (p.first_order_at IS NULL AND h.order_at IS NOT NULL)
  ORDER BY p.person_id FOR UPDATE OF p
)
UPDATE analytics_people p SET first_seen_at = least(p.first_seen_at, m.first_at),
  first_order_at = least(p.first_order_at, m.order_at)
FROM moved m WHERE p.person_id = m.person_id
"""
# The people whose first visit (first order) fell in the hour but no longer has an event
# (an order) there (a guest's events given to the user at sign-in): theirs is now their
# earliest event (order) left, or none.
LOST_FIRST_SEEN = """
UPDATE analytics_people p SET first_seen_at = (
  SELECT min(created_at) FROM analytics_events e WHERE e.person_id = p.person_id)
WHERE p.first_seen_at >= :start AND p.first_seen_at < :end
  AND NOT EXISTS (SELECT 1 FROM analytics_events e
                  WHERE e.person_id = p.person_id AND e.created_at = p.first_seen_at)
"""
LOST_FIRST_ORDER = """
UPDATE analytics_people p SET first_order_at = (
  SELECT min(created_at) FROM analytics_events e
  WHERE e.person_id = p.person_id AND e.event = 'order_complete')
WHERE p.first_order_at >= :start AND p.first_order_at < :end
  AND NOT EXISTS (SELECT 1 FROM analytics_events e WHERE e.person_id = p.person_id
                  AND e.created_at = p.first_order_at AND e.event = 'order_complete')
"""
EVENT_PEOPLE = """
SELECT e.event, count(*), array_agg(DISTINCT p.number)
FROM analytics_events e JOIN analytics_people p ON p.person_id = e.person_id
WHERE e.created_at >= :start AND e.created_at < :end
GROUP BY e.event
"""
SALES = f"""
INSERT INTO analytics_sales_hourly (hour, currency, orders, revenue)
SELECT CAST(:start AS timestamptz), o.currency, count(*), sum(o.total) FROM orders o
WHERE o.created_at >= :start AND o.created_at < :end AND {SOLD}
GROUP BY o.currency
"""
PRODUCT_SALES = f"""
INSERT INTO analytics_product_sales_hourly (hour, product_id, currency, units, revenue, orders)
SELECT CAST(:start AS timestamptz), l.product_id, o.currency, sum(l.quantity), sum(l.line_total),
       count(DISTINCT o.id)
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE o.created_at >= :start AND o.created_at < :end AND {SOLD}
GROUP BY l.product_id, o.currency
"""
PRODUCT_VIEWS = """
INSERT INTO analytics_product_view_hourly (hour, product_id, views)
SELECT CAST(:start AS timestamptz), properties ->> 'productId', count(*) FROM analytics_events
WHERE event = 'product_view' AND created_at >= :start AND created_at < :end
  AND length(properties ->> 'productId') BETWEEN 1 AND 40
GROUP BY 2
"""
REFUNDS = f"""
INSERT INTO analytics_refund_hourly (hour, currency, refunds, amount)
SELECT CAST(:start AS timestamptz), data ->> 'currency',
       count(*) FILTER (WHERE type = 'payment.refunded')
         - count(*) FILTER (WHERE type = 'payment.refund_failed'),
       sum(CASE type WHEN 'payment.refunded' THEN 1 ELSE -1 END * (data ->> 'amount')::bigint)
FROM outbox
WHERE type IN {REFUND_TYPES} AND created_at >= :start AND created_at < :end
  AND length(data ->> 'currency') = 3 AND data ? 'amount'
GROUP BY 2
"""
DAILY_PRODUCT_VIEWS = """
INSERT INTO analytics_product_view_daily (day, product_id, views)
SELECT CAST(:day AS timestamptz), product_id, sum(views) FROM analytics_product_view_hourly
WHERE hour >= :day AND hour < :end GROUP BY product_id
"""
DAILY_PRODUCT_SALES = """
INSERT INTO analytics_product_sales_daily (day, product_id, currency, units, revenue, orders)
SELECT CAST(:day AS timestamptz), product_id, currency, sum(units), sum(revenue), sum(orders)
FROM analytics_product_sales_hourly WHERE hour >= :day AND hour < :end
GROUP BY product_id, currency
"""
DAILY_TABLES = (
    "analytics_event_daily",
    "analytics_product_view_daily",
    "analytics_product_sales_daily",
)
HOURLY_TABLES = (
    "analytics_event_hourly",
    "analytics_sales_hourly",
    "analytics_product_view_hourly",
    "analytics_product_sales_hourly",
)


class RollupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        # sqlmodel types exec() for select() only; text() runs as in SQLAlchemy.
        result = await self.session.exec(text(sql), params=params)  # type: ignore[call-overload]
        return [tuple(r) for r in result.all()] if result.returns_rows else []

    async def now(self) -> datetime:
        rows = await self._rows("SELECT now()")
        value: datetime = rows[0][0]
        return value

    async def watermark(self) -> datetime | None:
        rows = await self._rows(
            "SELECT watermark FROM analytics_rollup_state WHERE name = :name", name=STATE
        )
        return rows[0][0] if rows else None

    async def set_watermark(self, at: datetime) -> None:
        await self._rows(
            "INSERT INTO analytics_rollup_state (name, watermark) VALUES (:name, :at) "
            "ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark",
            name=STATE,
            at=at,
        )

    async def touched_hours(self, since: datetime | None) -> tuple[list[datetime], list[datetime]]:
        """Hours whose events or sales changed after ``since``; hours with new refunds."""
        params = {"since": since or EPOCH}
        hours = await self._rows(TOUCHED_HOURS, **params)
        refunds = await self._rows(TOUCHED_REFUND_HOURS, **params)
        return sorted(r[0] for r in hours), sorted(r[0] for r in refunds)

    async def recompute_hour(self, start: datetime) -> None:
        """Every rollup but refunds, for the hour starting at ``start``, from raw rows;
        and the first visits and first orders of the hour's people (and of those whose
        first visit or order it was)."""
        span = {"start": start, "end": start + HOUR}
        for table in HOURLY_TABLES:
            await self._rows(f"DELETE FROM {table} WHERE hour = :start", start=start)
        for statement in (NUMBER_PEOPLE, EARLIER_FIRSTS, LOST_FIRST_SEEN, LOST_FIRST_ORDER):
            await self._rows(statement, **span)
        everyone: set[int] = set()
        total = 0
        for event, count, numbers in await self._rows(EVENT_PEOPLE, **span):
            everyone.update(numbers)
            total += count
            await self._event_row(start, event, count, numbers)
        if total:
            await self._event_row(start, ANY_EVENT, total, everyone)
        for statement in (SALES, PRODUCT_VIEWS, PRODUCT_SALES):
            await self._rows(statement, **span)

    async def recompute_day(self, day: datetime) -> None:
        """The day's events and people, product views and product sales: the sums (and
        unions) of its hourly rows."""
        for table in DAILY_TABLES:
            await self._rows(f"DELETE FROM {table} WHERE day = :day", day=day)
        for statement in (DAILY_PRODUCT_VIEWS, DAILY_PRODUCT_SALES):
            await self._rows(statement, day=day, end=day + DAY)
        rows = await self._rows(
            "SELECT event, sum(events), array_agg(bitmap) FROM analytics_event_hourly "
            "WHERE hour >= :day AND hour < :end GROUP BY event",
            day=day,
            end=day + DAY,
        )
        for event, count, blobs in rows:
            members = bitmaps.union(bytes(b) for b in blobs)
            await self._rows(
                "INSERT INTO analytics_event_daily "
                "VALUES (:day, :event, :events, :people, :bitmap)",
                day=day,
                event=event,
                events=count,
                people=members.bit_count(),
                bitmap=bitmaps.encode_int(members),
            )

    async def recompute_refund_hour(self, start: datetime) -> None:
        """Refunds come from ``payment.refunded`` outbox rows (less ``payment.refund_failed``
        ones), which are pruned after the outbox retention: only hours with new refunds
        are recomputed, never older ones."""
        await self._rows("DELETE FROM analytics_refund_hourly WHERE hour = :start", start=start)
        await self._rows(REFUNDS, start=start, end=start + HOUR)

    async def _event_row(
        self, hour: datetime, event: str, count: int, numbers: Sequence[int] | set[int]
    ) -> None:
        await self._rows(
            "INSERT INTO analytics_event_hourly VALUES (:hour, :event, :events, :people, :bitmap)",
            hour=hour,
            event=event,
            events=count,
            people=len(numbers),
            bitmap=bitmaps.encode(numbers),
        )


def day_groups(hours: Sequence[datetime], streams: int) -> list[list[datetime]]:
    """``hours`` in at most ``streams`` groups holding whole UTC days (days dealt in turn),
    so that groups recomputed side by side never share a day's row."""
    days: dict[datetime, list[datetime]] = defaultdict(list)
    for hour in sorted(set(hours)):
        days[hour.replace(hour=0)].append(hour)
    ordered = [days[day] for day in sorted(days)]
    groups = [ordered[n :: max(1, streams)] for n in range(max(1, streams))]
    return [[hour for day in group for hour in day] for group in groups if group]


@dataclass(frozen=True)
class RefreshOutcome:
    hours: int
    refund_hours: int
    watermark: datetime


class RollupService:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    async def refresh(self) -> RefreshOutcome:
        """Recompute the hours touched since the watermark and relink the people with
        events received since (``links.py``), then move the watermark to when this run
        began. A run that fails part-way leaves the watermark where it was,
        so the next run redoes every hour (each recompute is idempotent)."""
        async with transaction(self.sessions) as session:
            rollups = RollupRepository(session)
            began = await rollups.now()
            watermark = await rollups.watermark()
            since = None if watermark is None else watermark - OVERLAP
            hours, refund_hours = await rollups.touched_hours(since)
        await self.recompute(hours, refund_hours)
        async with transaction(self.sessions) as session:
            pending = await LinkRepository(session).pending(since or EPOCH)
        await self.relink(pending)
        async with transaction(self.sessions) as session:
            await RollupRepository(session).set_watermark(began)
        return RefreshOutcome(len(hours), len(refund_hours), began)

    async def relink(self, people: Sequence[str]) -> None:
        """Every event of ``people`` linked to its person's previous event
        (``links.py``), a batch of people a transaction."""
        for batch in batches(people):
            async with transaction(self.sessions) as session:
                await LinkRepository(session).relink(batch)

    async def watermark(self) -> datetime | None:
        async with transaction(self.sessions) as session:
            return await RollupRepository(session).watermark()

    async def rebuild(self, hours: Sequence[datetime], *, streams: int = 1) -> RefreshOutcome:
        """Recompute ``hours`` whatever the watermark (a bulk import written with its past
                receipt times, which a refresh would not see again), in ``streams`` groups of
                whole days side by side; then move the watermark to when this began and refresh
                what changed meanwhile; the people with events in those hours are relinked
        (``links.py``). The outcome counts every hour recomputed."""
        async with transaction(self.sessions) as session:
            began = await RollupRepository(session).now()
        await asyncio.gather(*(self.recompute(group) for group in day_groups(hours, streams)))
        if hours:
            async with transaction(self.sessions) as session:
                people = await LinkRepository(session).active(min(hours), max(hours) + HOUR)
            await self.relink(people)
        async with transaction(self.sessions) as session:
            await RollupRepository(session).set_watermark(began)
        outcome = await self.refresh()
        return RefreshOutcome(len(hours) + outcome.hours, outcome.refund_hours, outcome.watermark)

    async def recompute(
        self, hours: Sequence[datetime], refund_hours: Sequence[datetime] = ()
    ) -> None:
        """Each hour in its own transaction: readers see an hour before or after, whole."""
        by_hour: dict[datetime, list[str]] = defaultdict(list)
        for hour in hours:
            by_hour[hour].append("all")
        for hour in refund_hours:
            by_hour[hour].append("refunds")
        for hour, parts in sorted(by_hour.items()):
            async with transaction(self.sessions) as session:
                rollups = RollupRepository(session)
                if "all" in parts:
                    await rollups.recompute_hour(hour)
                if "refunds" in parts:
                    await rollups.recompute_refund_hour(hour)
        for day in sorted({h.replace(hour=0) for h in hours}):
            async with transaction(self.sessions) as session:
                await RollupRepository(session).recompute_day(day)
