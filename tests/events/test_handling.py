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
from models.events import DeliveryStatus, EventDelivery, EventReceipt
from models.outbox import OutboxEvent
from models.users import User
from services.events.deliveries import DeliveryRepository
from services.events.delivery import DeliveryService
from services.events.handling import EventGone, handle_once
from services.events.relay_repository import RelayRepository
from services.events.subscribers import DomainEvent, Subscriber
from tests.events.customers import create_customer
from tests.lock_waits import waiting_on_locks
from workflows.types.events import DeliveryRef, DeliveryStep


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


async def _fanned_out(sessions: SessionFactory, subscriber: str) -> tuple[User, OutboxEvent]:
    """A customer's ``user.created``, fanned out to ``subscriber`` alone, committed."""
    async with transaction(sessions) as session:
        user = await create_customer(session)
        row = await publish(session, EventType.USER_CREATED, user.id, {"userId": user.id})
        deliveries = RelayRepository(session)
        await deliveries.add_deliveries(row, [subscriber])
        # Fanned out by hand: a relay of a later test must not deliver it to its own.
        await deliveries.mark_dispatched([row.id], delivered=[])
    return user, row


class HeldProvider:
    """A handler that waits to be released, as a provider's call would; how many times it
    ran and, with ``renames``, a database effect: a "!" on the customer's name."""

    def __init__(self, *, renames: bool = False) -> None:
        self.renames = renames
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self.runs = 0

    async def handle(self, event: DomainEvent, session: AsyncSession) -> None:
        self.runs += 1
        self.entered.set()
        await self.release.wait()
        if self.renames:
            customer = await session.get(User, event.data["userId"])
            assert customer is not None
            customer.name = customer.name + "!"
            session.add(customer)

    def service(self, sessions: SessionFactory, redis: Redis, name: str) -> DeliveryService:
        subscriber = Subscriber(name, frozenset({EventType.USER_CREATED}), self.handle)
        return DeliveryService(sessions, redis, [subscriber])


async def _delivered(sessions: SessionFactory, event_id: str, subscriber: str) -> EventDelivery:
    """The delivery, delivered, and its event too (its only one)."""
    async with sessions() as session:
        delivery = await session.get(EventDelivery, (event_id, subscriber))
        assert delivery is not None
        assert delivery.status == DeliveryStatus.DELIVERED
        event = await session.get(OutboxEvent, event_id)
        assert event is not None
        assert event.delivered_at is not None
        return delivery


async def test_two_attempts_of_one_delivery_at_once_run_its_handler_once(
    engine: AsyncEngine, redis: Redis
) -> None:
    # An attempt Temporal gave up on (its start-to-close timeout) may still be running
    # beside its retry, or beside the restarted delivery's new workflow: the second waits
    # on the first's receipt, then finds it and runs nothing (no second email, deal, ...).
    sessions = create_session_factory(engine)  # committed: two connections at once
    name = "twice_at_once"
    _, row = await _fanned_out(sessions, name)
    provider = HeldProvider()
    service = provider.service(sessions, redis, name)
    first = asyncio.create_task(service.deliver(row.id, name, 0))
    await asyncio.wait_for(provider.entered.wait(), 10)
    second = asyncio.create_task(service.deliver(row.id, name, 0))
    await waiting_on_locks(engine, 1, query_like="%event_receipts%")
    provider.release.set()

    assert await first == DeliveryStep.DELIVERED
    assert await second == DeliveryStep.DELIVERED
    assert provider.runs == 1
    delivery = await _delivered(sessions, row.id, name)
    assert delivery.attempts == 2


async def test_an_attempt_outlived_by_its_generation_finishes_nothing(
    engine: AsyncEngine, redis: Redis
) -> None:
    # The operator terminated the batch while its local activity ran the handler; the
    # sweep restarted the delivery as generation 1, whose new run delivers it. The old
    # attempt, ending later, must neither mark generation 1's delivery delivered (under
    # the new run's feet) nor fail: its transaction changes nothing, the new run delivers.
    sessions = create_session_factory(engine)  # committed: the restart beside the attempt
    name = "outlived"
    user, row = await _fanned_out(sessions, name)
    provider = HeldProvider(renames=True)
    service = provider.service(sessions, redis, name)
    old = asyncio.create_task(service.deliver(row.id, name, 0))
    await asyncio.wait_for(provider.entered.wait(), 10)
    ref = DeliveryRef(event_id=row.id, subscriber=name, generation=0, event_type=row.type)
    async with transaction(sessions) as session:
        assert await DeliveryRepository(session).restart(ref)
    provider.release.set()

    assert await old == DeliveryStep.SKIPPED
    async with sessions() as session:
        delivery = await session.get(EventDelivery, (row.id, name))
        assert delivery is not None
        assert (delivery.status, delivery.generation) == (DeliveryStatus.PENDING, 1)
        assert await session.get(EventReceipt, (row.id, name)) is None  # rolled back
    assert await service.deliver(row.id, name, 1) == DeliveryStep.DELIVERED
    assert provider.runs == 2
    assert (await _delivered(sessions, row.id, name)).generation == 1
    async with sessions() as session:
        customer = await session.get(User, user.id)
        assert customer is not None
        assert customer.name == user.name + "!"  # the old attempt's effect rolled back
