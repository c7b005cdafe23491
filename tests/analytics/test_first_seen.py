"""Each person's first visit (``analytics_people.first_seen_at``) as the hourly rollup
keeps it, against the earliest of their raw events: incrementally, after a late event,
after a guest's events are given to a user, and after a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from services.analytics.rollups import RollupService
from tests.analytics.rows import event

DAY0 = datetime(2024, 6, 3, tzinfo=UTC)
H = timedelta(hours=1)
FIRST_SEEN = """
SELECT person_id, first_seen_at FROM analytics_people WHERE person_id = ANY(:people)
"""
RAW_FIRST = """
SELECT person_id, min(created_at) FROM analytics_events WHERE person_id = ANY(:people)
GROUP BY person_id
"""
PEOPLE = ["user_fs1", "user_fs2", "anon:guest_fs"]


async def _pairs(session: AsyncSession, sql: str) -> dict[str, datetime | None]:
    result = await session.exec(text(sql), params={"people": PEOPLE})  # type: ignore[call-overload]
    return {person: at for person, at in result.all()}


async def first_seen(db_sessions: SessionFactory) -> dict[str, datetime | None]:
    async with db_sessions() as session:
        return await _pairs(session, FIRST_SEEN)


async def raw_first(db_sessions: SessionFactory) -> dict[str, datetime | None]:
    """The first visits recomputed here in the test, from every raw event."""
    async with db_sessions() as session:
        return await _pairs(session, RAW_FIRST)


async def guest_signs_in(db_sessions: SessionFactory) -> None:
    """The guest's events move to user_fs1, as a sign-in links them."""
    async with db_sessions() as session:
        await session.exec(
            text(  # type: ignore[call-overload]
                "UPDATE analytics_events SET person_id = 'user_fs1' "
                "WHERE person_id = 'anon:guest_fs'"
            )
        )
        await session.commit()


async def test_first_visits_follow_new_and_late_events_and_identity_links(
    db_sessions: SessionFactory,
) -> None:
    rollups = RollupService(db_sessions)
    async with db_sessions() as session:
        session.add_all(
            [
                event("product_view", "user_fs1", DAY0 + 10 * H + timedelta(minutes=20)),
                event("product_view", "user_fs1", DAY0 + 10 * H + timedelta(minutes=5)),
                event("add_to_cart", "user_fs1", DAY0 + 30 * H),
                event("product_view", "anon:guest_fs", DAY0 + 2 * H + timedelta(minutes=7)),
                event("product_view", "anon:guest_fs", DAY0 + 40 * H),
            ]
        )
        await session.commit()
    await rollups.recompute([DAY0 + 2 * H, DAY0 + 10 * H, DAY0 + 30 * H, DAY0 + 40 * H])
    assert await first_seen(db_sessions) == await raw_first(db_sessions)
    assert (await first_seen(db_sessions))["user_fs1"] == DAY0 + 10 * H + timedelta(minutes=5)

    # Incremental: a later hour recomputed alone leaves the first visit; a new person's
    # first hour gives theirs.
    async with db_sessions() as session:
        session.add(event("order_complete", "user_fs1", DAY0 + 50 * H))
        session.add(event("product_view", "user_fs2", DAY0 + 50 * H + timedelta(minutes=1)))
        await session.commit()
    await rollups.recompute([DAY0 + 50 * H])
    seen = await first_seen(db_sessions)
    assert seen["user_fs1"] == DAY0 + 10 * H + timedelta(minutes=5)
    assert seen["user_fs2"] == DAY0 + 50 * H + timedelta(minutes=1)

    # A late event, earlier than anything the person did: their first visit moves back.
    async with db_sessions() as session:
        session.add(event("product_view", "user_fs2", DAY0 + 5 * H))
        await session.commit()
    await rollups.recompute([DAY0 + 5 * H])
    assert (await first_seen(db_sessions))["user_fs2"] == DAY0 + 5 * H
    assert await first_seen(db_sessions) == await raw_first(db_sessions)

    # The guest signs in as user_fs1: its events count for the user (received again, so
    # their hours are recomputed). The user was first seen as the guest; the guest is
    # seen no more.
    await guest_signs_in(db_sessions)
    await rollups.recompute([DAY0 + 2 * H, DAY0 + 40 * H])
    seen = await first_seen(db_sessions)
    assert seen["user_fs1"] == DAY0 + 2 * H + timedelta(minutes=7)
    assert seen["anon:guest_fs"] is None
    assert {p: at for p, at in seen.items() if at} == await raw_first(db_sessions)


async def test_a_rebuild_gives_the_first_visits_of_imported_events(
    db_sessions: SessionFactory,
) -> None:
    """Events imported with past receipt times (a refresh does not see them): a rebuild
    fills their people's first visits; run twice, it changes nothing."""
    rollups = RollupService(db_sessions)
    await rollups.refresh()
    hours = [DAY0 + d * 24 * H + h * H for d in range(3) for h in (4, 19)]
    async with db_sessions() as session:
        session.add_all(
            [
                event("product_view", PEOPLE[n % 2], hour, received_at=DAY0)
                for n, hour in enumerate(reversed(hours))
            ]
        )
        await session.commit()
    await rollups.refresh()
    assert await first_seen(db_sessions) == {}
    await rollups.rebuild(hours, streams=1)
    expected = await raw_first(db_sessions)
    assert set(expected) == {"user_fs1", "user_fs2"}
    assert await first_seen(db_sessions) == expected
    await rollups.rebuild(hours, streams=1)
    assert await first_seen(db_sessions) == expected


FIRST_ORDER = """
SELECT person_id, first_order_at FROM analytics_people
WHERE person_id = ANY(:people) AND first_order_at IS NOT NULL
"""
RAW_FIRST_ORDER = """
SELECT person_id, min(created_at) FROM analytics_events
WHERE person_id = ANY(:people) AND event = 'order_complete' GROUP BY person_id
"""


async def test_first_orders_follow_new_and_late_orders_and_identity_links(
    db_sessions: SessionFactory,
) -> None:
    """``first_order_at`` is kept beside ``first_seen_at`` the same way: against the
    earliest raw ``order_complete`` after each change."""
    rollups = RollupService(db_sessions)

    async def agree() -> dict[str, datetime | None]:
        async with db_sessions() as session:
            kept = await _pairs(session, FIRST_ORDER)
            assert kept == await _pairs(session, RAW_FIRST_ORDER)
        return kept

    async with db_sessions() as session:
        session.add_all(
            [
                event("product_view", "user_fs1", DAY0 + 3 * H),
                event("order_complete", "user_fs1", DAY0 + 10 * H + timedelta(minutes=20)),
                event("order_complete", "user_fs1", DAY0 + 30 * H),
                event("order_complete", "anon:guest_fs", DAY0 + 2 * H + timedelta(minutes=7)),
                event("product_view", "user_fs2", DAY0 + 4 * H),
            ]
        )
        await session.commit()
    await rollups.recompute(
        [DAY0 + 2 * H, DAY0 + 3 * H, DAY0 + 4 * H, DAY0 + 10 * H, DAY0 + 30 * H]
    )
    kept = await agree()
    assert kept["user_fs1"] == DAY0 + 10 * H + timedelta(minutes=20)
    assert "user_fs2" not in kept  # seen, never ordered

    # A first order later on; then a late one, earlier than the person's first.
    async with db_sessions() as session:
        session.add(event("order_complete", "user_fs2", DAY0 + 50 * H))
        await session.commit()
    await rollups.recompute([DAY0 + 50 * H])
    assert (await agree())["user_fs2"] == DAY0 + 50 * H
    async with db_sessions() as session:
        session.add(event("order_complete", "user_fs2", DAY0 + 6 * H))
        await session.commit()
    await rollups.recompute([DAY0 + 6 * H])
    assert (await agree())["user_fs2"] == DAY0 + 6 * H

    # The guest who ordered signs in as user_fs1: the user's first order is the guest's.
    await guest_signs_in(db_sessions)
    await rollups.recompute([DAY0 + 2 * H])
    kept = await agree()
    assert kept["user_fs1"] == DAY0 + 2 * H + timedelta(minutes=7)
    assert "anon:guest_fs" not in kept
