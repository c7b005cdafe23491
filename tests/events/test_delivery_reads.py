"""One delivery reads its outbox row once (issue #15): the statement that counts the
attempt returns the event, and the handler's transaction does not read it again."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import create_session_factory, transaction
from core.events import EventType
from core.ids import IdPrefix, new_id
from core.outbox import publish
from models.outbox import OutboxEvent
from services.events.delivery import DeliveryService
from services.events.relay_repository import RelayRepository
from services.events.subscribers import DomainEvent, Subscriber
from workflows.types.events import DeliveryStep

SUBSCRIBER = "delivery-reads-probe"


async def test_a_delivery_reads_its_event_in_the_statement_that_counts_the_attempt(
    engine: AsyncEngine, redis: Redis
) -> None:
    sessions = create_session_factory(engine)
    user_id = new_id(IdPrefix.USER)
    async with transaction(sessions) as session:
        published = await publish(session, EventType.USER_CREATED, user_id, {"userId": user_id})
        await RelayRepository(session).add_deliveries(published, [SUBSCRIBER])
    handled: list[DomainEvent] = []

    async def handle(domain_event: DomainEvent, _session: AsyncSession) -> None:
        handled.append(domain_event)

    service = DeliveryService(
        sessions, redis, [Subscriber(SUBSCRIBER, frozenset({EventType.USER_CREATED}), handle)]
    )
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        delivered = await service.deliver(published.id, SUBSCRIBER, 0)
        again = await service.deliver(published.id, SUBSCRIBER, 0)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)

    assert (delivered, again) == (DeliveryStep.DELIVERED, DeliveryStep.SKIPPED)
    assert [(e.id, e.type, e.aggregate_id, e.data) for e in handled] == [
        (published.id, EventType.USER_CREATED, user_id, {"userId": user_id})
    ]
    assert handled[0].created_at == published.created_at
    # The outbox row is read by the attempt's statement and locked to finish the event;
    # no plain read of it besides.
    reads = [s for s in statements if s.startswith("SELECT") and " FROM outbox" in s]
    assert [s for s in reads if "FOR NO KEY UPDATE" not in s] == [], reads
    assert statements[0].startswith("WITH counted AS (UPDATE event_deliveries"), statements[0]


async def test_a_deliverys_statements_are_built_once_and_reused(
    engine: AsyncEngine, redis: Redis
) -> None:
    """Issue #15: building a delivery's statements (its attempt, receipt, finish, and the
    outbox row's lock and delivered_at) per call cost more of the worker's CPU than
    running them (py-spy). The second delivery runs the very statement objects of the
    first (their cache keys memoised), with its own values bound."""
    sessions = create_session_factory(engine)
    published = []
    async with transaction(sessions) as session:
        for _ in range(2):
            user_id = new_id(IdPrefix.USER)
            event_ = await publish(session, EventType.USER_CREATED, user_id, {"userId": user_id})
            await RelayRepository(session).add_deliveries(event_, [SUBSCRIBER])
            published.append(event_)
    handled: list[str] = []

    async def handle(domain_event: DomainEvent, _session: AsyncSession) -> None:
        handled.append(domain_event.aggregate_id)

    service = DeliveryService(
        sessions, redis, [Subscriber(SUBSCRIBER, frozenset({EventType.USER_CREATED}), handle)]
    )
    executed: list[list[object]] = []

    def record(_conn: Any, clause: Any, *_: Any) -> None:
        executed[-1].append(clause)

    event.listen(engine.sync_engine, "before_execute", record)
    try:
        for event_ in published:
            executed.append([])
            assert await service.deliver(event_.id, SUBSCRIBER, 0) is DeliveryStep.DELIVERED
    finally:
        event.remove(engine.sync_engine, "before_execute", record)

    assert handled == [e.aggregate_id for e in published]
    first, second = executed
    # The attempt, the receipt, finishing, the outbox row's lock and its delivered_at.
    assert len(first) == len(second) == 5, (first, second)
    assert all(a is b for a, b in zip(first, second, strict=True)), (first, second)
    async with transaction(sessions) as session:
        for event_ in published:
            row = await session.get(OutboxEvent, event_.id)
            assert row is not None
            assert row.delivered_at is not None
