"""``handle_once``: a handler's database effect and its receipt commit together; two
attempts of one delivery at once run the handler once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from models.users import User
from services.events.deliveries import DeliveryRepository
from services.events.delivery import DeliveryService
from services.events.handling import EventGone, handle_once
from services.events.subscribers import DomainEvent, Subscriber
from tests.events.customers import create_customer
from tests.lock_waits import waiting_on_locks
from workflows.types.events import DeliveryStep


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


async def test_two_attempts_of_one_delivery_at_once_run_its_handler_once(
    engine: AsyncEngine, redis: Redis
) -> None:
    # An attempt Temporal gave up on (its start-to-close timeout) may still be running
    # beside its retry, or beside the restarted delivery's new workflow: the second waits
    # on the first's receipt, then finds it and runs nothing (no second email, deal, ...).
    sessions = create_session_factory(engine)  # committed: two connections at once
    name = "twice_at_once"
    async with transaction(sessions) as session:
        user = await create_customer(session)
        row = await publish(session, EventType.USER_CREATED, user.id, {"userId": user.id})
        deliveries = DeliveryRepository(session)
        await deliveries.add_deliveries(row, [name])
        # Fanned out by hand: a relay of a later test must not deliver it to its own.
        await deliveries.mark_dispatched([row.id], delivered=[])
    entered, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def provider_call(event: DomainEvent, session: AsyncSession) -> None:
        nonlocal runs
        runs += 1
        entered.set()
        await release.wait()

    service = DeliveryService(
        sessions, redis, [Subscriber(name, frozenset({EventType.USER_CREATED}), provider_call)]
    )
    first = asyncio.create_task(service.deliver(row.id, name, 0))
    await asyncio.wait_for(entered.wait(), 10)
    second = asyncio.create_task(service.deliver(row.id, name, 0))
    await waiting_on_locks(engine, 1, query_like="%event_receipts%")
    release.set()

    assert await first == DeliveryStep.DELIVERED
    assert await second == DeliveryStep.DELIVERED
    assert runs == 1
    async with sessions() as session:
        delivery = await session.get(EventDelivery, (row.id, name))
        assert delivery is not None
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
        event = await session.get(OutboxEvent, row.id)
        assert event is not None
        assert event.delivered_at is not None
