"""``handle_once``: a handler's database effect and its receipt commit together."""

from __future__ import annotations

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.users import User
from services.events.handling import EventGone, handle_once
from services.events.subscribers import DomainEvent, Subscriber
from tests.events.customers import create_customer


class Boom(RuntimeError):
    pass


async def _event(sessions: SessionFactory, user: User) -> str:
    async with transaction(sessions) as session:
        row = await publish(session, EventType.USER_CREATED, user.id, {"userId": user.id})
        return row.id


async def test_a_handler_runs_once_per_event_and_subscriber(db_sessions: SessionFactory) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
    seen: list[DomainEvent] = []

    async def rename(event: DomainEvent, session: AsyncSession) -> None:
        seen.append(event)
        row = await session.get(User, event.data["userId"])
        assert row is not None
        row.name = row.name + "!"
        session.add(row)

    first = Subscriber("renamer", frozenset({EventType.USER_CREATED}), rename)
    second = Subscriber("other", frozenset({EventType.USER_CREATED}), rename)
    event_id = await _event(db_sessions, user)

    assert await handle_once(db_sessions, first, event_id) is True
    assert await handle_once(db_sessions, first, event_id) is False
    assert await handle_once(db_sessions, second, event_id) is True
    async with db_sessions() as session:
        row = await session.get(User, user.id)
        assert row is not None
        assert row.name == user.name + "!!"
    assert [e.type for e in seen] == [EventType.USER_CREATED] * 2
    assert seen[0].aggregate_type == "user"
    assert seen[0].aggregate_id == user.id


async def test_a_failing_handler_leaves_no_effect_and_no_receipt(
    db_sessions: SessionFactory,
) -> None:
    async with transaction(db_sessions) as session:
        user = await create_customer(session)
    calls = 0

    async def flaky(event: DomainEvent, session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        row = await session.get(User, event.data["userId"])
        assert row is not None
        row.name = "changed"
        session.add(row)
        if calls == 1:
            raise Boom("provider down")

    subscriber = Subscriber("flaky", frozenset({EventType.USER_CREATED}), flaky)
    event_id = await _event(db_sessions, user)
    with pytest.raises(Boom):
        await handle_once(db_sessions, subscriber, event_id)
    async with db_sessions() as session:
        row = await session.get(User, user.id)
        assert row is not None
        assert row.name == user.name
    assert await handle_once(db_sessions, subscriber, event_id) is True
    assert calls == 2


async def test_an_unknown_event_is_a_clear_error(db_sessions: SessionFactory) -> None:
    async def never(event: DomainEvent, session: AsyncSession) -> None:
        raise AssertionError("not called")

    subscriber = Subscriber("never", frozenset({EventType.USER_CREATED}), never)
    with pytest.raises(EventGone):
        await handle_once(db_sessions, subscriber, "evt_missing")
