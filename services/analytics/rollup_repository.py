"""The hourly rollups' SQL (``rollups.py`` runs it): the hours a run must recompute, each
hour and day recomputed from raw rows, and the marks of how far the rollups have read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics_rollups import ANY_EVENT
from services.analytics import bitmaps

STATE = "hourly"
# An unfinished run's marks, beside the watermark: when it began (the watermark it moves
# to once whole), the end of the last UTC day it finished, the last person it relinked
# (in ``position``).
RUN_BEGAN, RUN_THROUGH = f"{STATE}.run_began", f"{STATE}.run_through"
RUN_RELINKED = f"{STATE}.run_relinked"
RUN_MARKS = (RUN_BEGAN, RUN_THROUGH, RUN_RELINKED)


@dataclass(frozen=True)
class RunMarks:
    """How far an unfinished run got: all None when none is unfinished."""

    began: datetime | None = None
    through: datetime | None = None
    relinked: str | None = None


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
# refund's own outbox row may have been pruned by then, its hour is never recomputed. A
# failure that gives nothing back (``amount`` 0: a refund whose answer was lost, never
# announced as ``payment.refunded``, so never counted) takes no refund off the count.
REFUND_TYPES = "('payment.refunded', 'payment.refund_failed')"
TOUCHED_REFUND_HOURS = f"""
SELECT DISTINCT date_trunc('hour', created_at, 'UTC') FROM outbox
WHERE type IN {REFUND_TYPES} AND created_at > :since
"""
# Events written for an account after its erasure committed (by a path that did not
# check, or a worker of an earlier release) count for their visitor alone, as the
# writers now write them (``AnalyticsRecorder.track``, the batch writer), before the
# hours are read: numbered as the account, they would give it an ``analytics_people``
# row (and funnel links) again, the erasure's pseudonym having taken the old one. Their
# ``received_at`` moves to now, so their hours are recomputed and their people relinked.
# (An event with the account's ``user_id`` counts for it: ``person_id`` is the account.)
ERASED_STRAYS = """
UPDATE analytics_events e SET user_id = NULL, session_id = NULL,
  person_id = coalesce('anon:' || e.anonymous_id, 'ae:' || e.id), received_at = now()
FROM users u
WHERE e.received_at > :since AND e.person_id = u.id
  AND u.status = 'deleted' AND e.received_at >= u.deleted_at
"""
# An erased account's people row with no event of the account left (its erasure's
# pseudonym has the ones before it): one a rollup numbered from such events.
ERASED_PEOPLE = """
DELETE FROM analytics_people p USING users u
WHERE p.person_id = u.id AND u.status = 'deleted'
  AND NOT EXISTS (SELECT 1 FROM analytics_events e WHERE e.person_id = p.person_id)
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
         - count(*) FILTER (
             WHERE type = 'payment.refund_failed' AND (data ->> 'amount')::bigint > 0
         ),
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
        """The watermark moves to ``at``; an unfinished run's marks go (it is whole)."""
        await self._mark(STATE, at)
        await self._rows(
            "DELETE FROM analytics_rollup_state WHERE name = ANY(CAST(:names AS text[]))",
            names=list(RUN_MARKS),
        )

    async def _mark(self, name: str, at: datetime, position: str | None = None) -> None:
        await self._rows(
            "INSERT INTO analytics_rollup_state (name, watermark, position) "
            "VALUES (:name, :at, :position) ON CONFLICT (name) DO UPDATE "
            "SET watermark = excluded.watermark, position = excluded.position",
            name=name,
            at=at,
            position=position,
        )

    async def run_marks(self) -> RunMarks:
        rows = {
            name: (at, position)
            for name, at, position in await self._rows(
                "SELECT name, watermark, position FROM analytics_rollup_state "
                "WHERE name = ANY(CAST(:names AS text[]))",
                names=list(RUN_MARKS),
            )
        }
        return RunMarks(
            began=rows[RUN_BEGAN][0] if RUN_BEGAN in rows else None,
            through=rows[RUN_THROUGH][0] if RUN_THROUGH in rows else None,
            relinked=rows[RUN_RELINKED][1] if RUN_RELINKED in rows else None,
        )

    async def begin_run(self, began: datetime) -> None:
        await self._mark(RUN_BEGAN, began)

    async def run_done_through(self, through: datetime) -> None:
        await self._mark(RUN_THROUGH, through)

    async def run_relinked(self, person: str) -> None:
        await self._mark(RUN_RELINKED, await self.now(), person)

    async def unlink_erased(self, since: datetime | None) -> None:
        """Events received since ``since`` for an account erased before they were (and
        the people row they gave it) no longer count for the account."""
        await self._rows(ERASED_STRAYS, since=since or EPOCH)
        await self._rows(ERASED_PEOPLE)

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
