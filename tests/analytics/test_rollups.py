"""The hourly rollups against the raw rows they come from, on the real database: after a
refresh, after late events arrive, and after a guest's events are linked to a user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from models.analytics_rollups import ANY_EVENT
from models.base import utcnow
from services.analytics import bitmaps
from services.analytics.rollups import RollupRepository, RollupService, day_groups
from tests.analytics import rows
from tests.analytics.rows import event

RAW = """
SELECT event, count(*), array_agg(DISTINCT person_id) FROM analytics_events
WHERE created_at >= :start AND created_at < :end GROUP BY event
"""
ROLLED = """
SELECT event, events, people, bitmap FROM analytics_event_hourly WHERE hour = :start
"""


async def _rows(session: AsyncSession, sql: str, **params: object) -> list[tuple[object, ...]]:
    result = await session.exec(text(sql), params=params)  # type: ignore[call-overload]
    return [tuple(r) for r in result.all()] if result.returns_rows else []


async def raw_hour(session: AsyncSession, hour: datetime) -> dict[str, tuple[int, set[str]]]:
    """The hour recomputed from raw events, here in the test: events and people by event."""
    rows = await _rows(session, RAW, start=hour, end=hour + timedelta(hours=1))
    found: dict[str, tuple[int, set[str]]] = {}
    everyone: set[str] = set()
    total = 0
    for name, count, people in rows:
        assert isinstance(name, str)
        assert isinstance(count, int)
        assert isinstance(people, list)
        found[name] = (count, set(people))
        everyone |= set(people)
        total += count
    if total:
        found[ANY_EVENT] = (total, everyone)
    return found


async def rolled_hour(session: AsyncSession, hour: datetime) -> dict[str, tuple[int, set[str]]]:
    """The hour as the rollup holds it, people numbers mapped back to person ids."""
    numbers = {
        n: p for p, n in await _rows(session, "SELECT person_id, number FROM analytics_people")
    }
    found: dict[str, tuple[int, set[str]]] = {}
    for name, count, people, blob in await _rows(session, ROLLED, start=hour):
        assert isinstance(name, str)
        assert isinstance(count, int)
        assert isinstance(blob, bytes)
        members = bitmaps.decode(blob)
        ids = {str(p) for n, p in numbers.items() if isinstance(n, int) and members >> n & 1}
        assert people == len(ids)
        found[name] = (count, ids)
    return found


async def test_rollups_match_the_raw_events_after_late_events_and_identity_links(
    db_sessions: SessionFactory,
) -> None:
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0)
    h1, h2, late_hour = (
        hour - timedelta(hours=2),
        hour - timedelta(hours=1),
        hour - timedelta(hours=20),
    )
    async with db_sessions() as session:
        session.add_all(
            [
                event("product_view", "user_ra1", h1 + timedelta(minutes=5), productId="prod_ra1"),
                event("product_view", "user_ra1", h1 + timedelta(minutes=6), productId="prod_ra1"),
                event("add_to_cart", "user_ra1", h1 + timedelta(minutes=7), productId="prod_ra1"),
                event("product_view", "anon:guest_ra", h1 + timedelta(minutes=8)),
                event("product_view", "user_ra2", h2 + timedelta(minutes=1), productId="prod_ra2"),
            ]
        )
        await session.commit()
    rollups = RollupService(db_sessions)
    await rollups.refresh()
    async with db_sessions() as session:
        for h in (h1, h2, late_hour):
            assert await rolled_hour(session, h) == await raw_hour(session, h)
        views, viewers = (await rolled_hour(session, h1))["product_view"]
        assert {"user_ra1", "anon:guest_ra"} <= viewers
        assert views >= 3
        late_before = await rolled_hour(session, late_hour)

    # A late event (20 h back, received now), and the guest signing in as user_ra1: its
    # events now count for the user and are received again (what ingestion does).
    async with db_sessions() as session:
        session.add(event("order_complete", "user_ra2", late_hour + timedelta(minutes=30)))
        await _rows(
            session,
            "UPDATE analytics_events SET person_id = 'user_ra1', received_at = :now "
            "WHERE person_id = 'anon:guest_ra'",
            now=datetime.now(UTC),
        )
        await session.commit()
    await rollups.refresh()
    async with db_sessions() as session:
        for h in (h1, h2, late_hour):
            assert await rolled_hour(session, h) == await raw_hour(session, h)
        late = await rolled_hour(session, late_hour)
        assert late["order_complete"][0] == late_before.get("order_complete", (0, set()))[0] + 1
        assert "user_ra2" in late["order_complete"][1]
        people_h1 = (await rolled_hour(session, h1))[ANY_EVENT][1]
        assert "user_ra1" in people_h1
        assert "anon:guest_ra" not in people_h1


async def test_a_refund_that_failed_later_is_counted_back_at_the_hour_it_failed(
    db_sessions: SessionFactory,
) -> None:
    """30.00 and 10.00 refunded in one hour, the 30.00 sent back by the card's bank days
    later: that hour is touched and counts it back, and the refunds of the whole span add
    up to the 10.00 the customer got. Before, the failure was not read: 40.00 refunded."""
    made, failed = datetime(2025, 4, 2, 10, tzinfo=UTC), datetime(2025, 4, 5, 15, tzinfo=UTC)
    async with db_sessions() as session:
        session.add_all(
            [
                rows.refund("ord_rf1", amount=3000, currency="USD", at=made + timedelta(minutes=5)),
                rows.refund("ord_rf2", amount=1000, currency="USD", at=made + timedelta(minutes=9)),
                rows.refund_failed(
                    "ord_rf1", amount=3000, currency="USD", at=failed + timedelta(minutes=7)
                ),
            ]
        )
        await session.commit()
    async with db_sessions() as session:
        _, refund_hours = await RollupRepository(session).touched_hours(failed)
    assert failed in refund_hours
    await RollupService(db_sessions).recompute([], [made, failed])
    async with db_sessions() as session:
        rolled = await _rows(
            session,
            "SELECT hour, currency, refunds, amount FROM analytics_refund_hourly "
            "WHERE hour >= :start AND hour < :end ORDER BY hour",
            start=made,
            end=failed + timedelta(hours=1),
        )
    assert rolled == [(made, "USD", 2, 4000), (failed, "USD", -1, -3000)]
    assert sum(int(str(r[3])) for r in rolled) == 1000


async def test_a_refund_never_counted_that_failed_is_not_counted_back(
    db_sessions: SessionFactory,
) -> None:
    """A staff refund whose answer was lost and that bounced before its retry: never
    announced as ``payment.refunded`` (never counted), its ``payment.refund_failed``
    gives back nothing (``amount`` 0). The hour counts no refund back: it counted -1
    refund for one that had never been counted."""
    made, failed = datetime(2025, 4, 9, 10, tzinfo=UTC), datetime(2025, 4, 9, 12, tzinfo=UTC)
    async with db_sessions() as session:
        session.add_all(
            [
                rows.refund("ord_rn1", amount=1000, currency="USD", at=made + timedelta(minutes=5)),
                rows.refund_failed(
                    "ord_rn2", amount=0, currency="USD", at=failed + timedelta(minutes=7)
                ),
            ]
        )
        await session.commit()
    await RollupService(db_sessions).recompute([], [made, failed])
    async with db_sessions() as session:
        rolled = await _rows(
            session,
            "SELECT hour, currency, refunds, amount FROM analytics_refund_hourly "
            "WHERE hour >= :start AND hour < :end ORDER BY hour",
            start=made,
            end=failed + timedelta(hours=1),
        )
    assert rolled == [(made, "USD", 1, 1000), (failed, "USD", 0, 0)]


async def test_recomputing_an_hour_twice_gives_the_same_rows(db_sessions: SessionFactory) -> None:
    hour = datetime(2025, 3, 1, 10, tzinfo=UTC)
    async with db_sessions() as session:
        session.add_all([event("product_view", f"user_rt{i}", hour) for i in range(3)])
        await session.commit()
    rollups = RollupService(db_sessions)
    await rollups.recompute([hour])
    async with db_sessions() as session:
        first = await rolled_hour(session, hour)
    await rollups.recompute([hour])
    async with db_sessions() as session:
        assert await rolled_hour(session, hour) == first
        assert first["product_view"] == (3, {"user_rt0", "user_rt1", "user_rt2"})
        views = await _rows(
            session, "SELECT views FROM analytics_product_view_hourly WHERE hour = :h", h=hour
        )
        assert views == []  # no productId: counted as an event, not as a product's view


async def test_a_day_of_product_views_and_sales_is_the_sum_of_its_hours_after_a_late_event(
    db_sessions: SessionFactory,
) -> None:
    day = datetime(2025, 3, 7, tzinfo=UTC)
    h1, h2 = day + timedelta(hours=9), day + timedelta(hours=22)
    async with db_sessions() as session:
        buyer = await rows.user(session)
        session.add_all(
            [
                event("product_view", "user_rd1", h1, productId="prod_rd1"),
                event("product_view", "user_rd2", h2 + timedelta(minutes=5), productId="prod_rd1"),
                event("product_view", "user_rd2", h2 + timedelta(minutes=6), productId="prod_rd2"),
            ]
        )
        await rows.order(
            session, user_id=buyer.id, at=h1, total=3000, lines=[("prod_rd1", 2, 3000)]
        )
        await rows.order(
            session, user_id=buyer.id, at=h2, total=1000, lines=[("prod_rd1", 1, 1000)]
        )
        await session.commit()
    rollups = RollupService(db_sessions)
    await rollups.recompute([h1, h2])
    async with db_sessions() as session:
        assert await _daily(session, day) == (
            [("prod_rd1", 2), ("prod_rd2", 1)],
            [("prod_rd1", "USD", 3, 4000, 2)],
        )

    # A late view of the first product in the 09:00 hour corrects that hour and its day.
    async with db_sessions() as session:
        late = h1 + timedelta(minutes=40)
        session.add(event("product_view", "user_rd3", late, productId="prod_rd1"))
        await session.commit()
    await rollups.recompute([h1])
    async with db_sessions() as session:
        views, _ = await _daily(session, day)
        assert views == [("prod_rd1", 3), ("prod_rd2", 1)]


async def _daily(
    session: AsyncSession, day: datetime
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    views = await _rows(
        session,
        "SELECT product_id, views FROM analytics_product_view_daily WHERE day = :day "
        "ORDER BY product_id",
        day=day,
    )
    sales = await _rows(
        session,
        "SELECT product_id, currency, units, revenue, orders FROM analytics_product_sales_daily "
        "WHERE day = :day ORDER BY product_id",
        day=day,
    )
    return views, sales


async def test_a_rebuild_recomputes_hours_behind_the_watermark_in_day_groups(
    db_sessions: SessionFactory,
) -> None:
    """Events imported with their past receipt times: a refresh does not see them again,
    a rebuild does, and moves the watermark. (One stream: the test's sessions share one
    connection; groups side by side are ``day_groups``, below, on separate connections.)"""
    rollups = RollupService(db_sessions)
    await rollups.refresh()
    long_ago = datetime(2025, 4, 1, tzinfo=UTC)
    hours = [long_ago + timedelta(days=d, hours=h) for d in range(3) for h in (3, 20)]
    async with db_sessions() as session:
        session.add_all(
            [
                event("product_view", f"user_rb{n % 3}", hour, received_at=long_ago)
                for n, hour in enumerate(hours)
            ]
        )
        await session.commit()
    await rollups.refresh()
    async with db_sessions() as session:
        assert await rolled_hour(session, hours[0]) == {}
    outcome = await rollups.rebuild(hours, streams=1)
    assert outcome.hours >= len(hours)
    assert outcome.watermark == await rollups.watermark()
    async with db_sessions() as session:
        for hour in hours:
            assert await rolled_hour(session, hour) == await raw_hour(session, hour)
        people = await _rows(
            session,
            "SELECT day, people FROM analytics_event_daily WHERE event = '*' "
            "AND day >= :start AND day < :end ORDER BY day",
            start=long_ago,
            end=long_ago + timedelta(days=3),
        )
        assert [p for _, p in people] == [2, 2, 2]


def test_day_groups_hold_whole_days_and_every_hour_once() -> None:
    start = datetime(2025, 4, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(0, 5 * 24, 7)]
    groups = day_groups([*hours, hours[0]], 2)
    assert len(groups) == 2
    assert sorted(h for group in groups for h in group) == hours
    days = [{h.date() for h in group} for group in groups]
    assert not days[0] & days[1]
    assert [len(d) for d in days] == [3, 2]  # days 1, 3, 5 and 2, 4
    assert day_groups(hours, 1) == [hours]
