"""Analytics written for an account after its erasure count for no one: not the account
(whose events its erasure moved to a pseudonym), nor anything that names it. Each writer
checks (the recorder of order, payment and cart events; the batch writer), and the
rollup turns any such event that reached the table anyway (a worker of the release
before) into one of nobody's before it numbers people. Before, each wrote the account's
id, and the rollup gave the erased account an ``analytics_people`` row again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from models.analytics import AnalyticsEvent, AnalyticsIdentity
from models.analytics_rollups import AnalyticsPerson
from models.users import User
from services.analytics import AnalyticsRecorder
from services.analytics.ingest import EventBuffer, PendingEvent
from services.analytics.rollups import RollupService
from services.users import UserService
from tests.events.customers import create_customer


async def _erased(session: AsyncSession) -> User:
    user = await create_customer(session)
    service = UserService(session, analytics=AnalyticsRecorder(False), password_min_length=15)
    await service.delete(user)
    return user


async def _events(session: AsyncSession, id_in: list[str]) -> list[AnalyticsEvent]:
    rows = await session.exec(select(AnalyticsEvent).where(col(AnalyticsEvent.id).in_(id_in)))
    return list(rows.all())


async def test_the_recorder_writes_an_erased_accounts_event_for_nobody(
    db_session: AsyncSession,
) -> None:
    erased = await _erased(db_session)
    active = await create_customer(db_session)
    recorder = AnalyticsRecorder(True)
    order = f"ord_{uuid4().hex[:12]}"
    late = await recorder.track(
        db_session,
        "order_complete",
        user_id=erased.id,
        session_id="cart_of_the_account",
        properties={"orderId": order, "total": 4100},
    )
    kept = await recorder.track(db_session, "order_complete", user_id=active.id, session_id="c")
    assert late is not None
    assert kept is not None
    await db_session.flush()
    assert (late.user_id, late.session_id, late.person_id) == (None, None, f"ae:{late.id}")
    assert late.properties == {"orderId": order, "total": 4100}  # still counted
    assert (kept.user_id, kept.person_id) == (active.id, active.id)


async def test_the_batch_writer_writes_an_erased_accounts_events_for_their_visitor(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        erased = await _erased(session)
        active = await create_customer(session)
        # Between the erasure and its subscriber, a device it signed in on is still linked.
        session.add(AnalyticsIdentity(anonymous_id=f"anon-linked-{erased.id}", user_id=erased.id))
    buffer = EventBuffer(
        db_sessions,
        batch_rows=100,
        flush_interval=600,
        capacity=100,
        write_timeout=5,
        shutdown_seconds=5,
    )
    # Tracked with the account's token (or from a device it signed in on) before the
    # erasure, written after it.
    pending = [
        PendingEvent("signed_in", user_id=erased.id, anonymous_id=f"anon-{erased.id}"),
        PendingEvent("linked", anonymous_id=f"anon-linked-{erased.id}"),
        PendingEvent("alone", user_id=erased.id),
        PendingEvent("active", user_id=active.id),
    ]
    await buffer.add(pending)
    assert await buffer.flush() == 4
    async with db_sessions() as session:
        written = {e.event: e for e in await _events(session, id_in=[p.id for p in pending])}
    assert [(written[p.event].user_id, written[p.event].person_id) for p in pending] == [
        (None, f"anon:anon-{erased.id}"),
        (None, f"anon:anon-linked-{erased.id}"),
        (None, f"ae:{pending[2].id}"),
        (active.id, active.id),
    ]


async def test_the_rollup_numbers_no_erased_account_from_events_written_after_it(
    db_sessions: SessionFactory,
) -> None:
    now = datetime.now(UTC)
    async with transaction(db_sessions) as session:
        erased = await _erased(session)
        erased.deleted_at = now - timedelta(minutes=1)
        session.add(erased)
        pseudonym = f"erased:{uuid4().hex}"
        before = AnalyticsEvent(
            event="checkout_start",
            person_id=pseudonym,
            created_at=now - timedelta(minutes=3),
            received_at=now - timedelta(minutes=3),
        )
        # As a writer of the release before wrote it (an order paid after the erasure),
        # and the people row a rollup of that release then gave the account.
        stray = AnalyticsEvent(
            event="order_complete",
            user_id=erased.id,
            session_id="cart_of_the_account",
            person_id=erased.id,
            properties={"orderId": "ord_after"},
            created_at=now,
            received_at=now,
        )
        session.add_all([before, stray])
        session.add(AnalyticsPerson(person_id=erased.id, first_seen_at=now, first_order_at=now))
    await RollupService(db_sessions).refresh()
    async with db_sessions() as session:
        people = await session.exec(
            select(AnalyticsPerson.person_id).where(AnalyticsPerson.person_id == erased.id)
        )
        assert people.all() == []
        (counted,) = await _events(session, [stray.id])
        assert (counted.user_id, counted.session_id) == (None, None)
        assert counted.person_id == f"ae:{stray.id}"
        assert counted.properties == {"orderId": "ord_after"}
        numbered = await session.exec(
            select(AnalyticsPerson.person_id).where(
                col(AnalyticsPerson.person_id).in_([counted.person_id, pseudonym])
            )
        )
        assert sorted(numbered.all()) == sorted([counted.person_id, pseudonym])
