"""A subscriber a deploy adds gets every event dispatched from the start of the first
worker process that has it, none dispatched before, on real PostgreSQL: relays of the old
and the new code side by side, the new one's first pass later than its start (a process
connects and starts its workers before its relay registers what it knows).

Before, the rule was "dispatched after the first pass": the events the old code's relay
dispatched between the new worker's start and that pass never reached the new
subscriber."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from models.events import DeliveryStatus
from models.outbox import OutboxEvent
from services.events.relay import RelayService
from services.events.subscribers import DomainEvent, Subscriber
from tests.events.relay_support import deliveries, run_id
from workflows.types.events import DeliveryBatch


async def _start_nothing(batches: Sequence[DeliveryBatch]) -> list[str]:
    return []


async def _ignore(event: DomainEvent, session: AsyncSession) -> None:
    return None


async def _publish(sessions: SessionFactory, type: EventType, aggregate: str) -> str:
    async with transaction(sessions) as session:
        return (await publish(session, type, aggregate, {"userId": aggregate})).id


async def _outbox(engine: AsyncEngine, event_id: str) -> OutboxEvent:
    async with create_session_factory(engine)() as session:
        row = await session.get(OutboxEvent, event_id)
    assert row is not None
    return row


async def test_a_subscriber_a_deploy_adds_gets_what_was_dispatched_since_its_first_worker_began(
    engine: AsyncEngine,
) -> None:
    run = run_id()
    sessions = create_session_factory(engine)
    created, deleted = EventType.ORDER_CREATED, EventType.USER_DELETED
    kept = Subscriber(f"kept_{run}", frozenset({created}), _ignore)
    # New in the deploy: for a type the old code has a subscriber of, and one it has none.
    added = Subscriber(f"added_{run}", frozenset({created, deleted}), _ignore)
    old = RelayService(sessions, [kept], beat_every=timedelta(0))

    # History: dispatched by the old code a minute before the deploy.
    history = await _publish(sessions, created, f"agg-{run}-0")
    await old.run_pass(_start_nothing)
    async with transaction(sessions) as session:
        await session.exec(
            update(OutboxEvent)
            .where(col(OutboxEvent.id) == history)
            .values(dispatched_at=func.now() - timedelta(minutes=1))
        )

    # The first worker of the new code starts; before its relay's first pass, the old
    # code's relay dispatches what comes (the user.deleted, wanted by nobody it knows,
    # delivered at once).
    new = RelayService(sessions, [kept, added], beat_every=timedelta(0))
    in_the_gap = [
        await _publish(sessions, created, f"agg-{run}-1"),
        await _publish(sessions, deleted, f"user_{run}"),
    ]
    await old.run_pass(_start_nothing)
    assert (await _outbox(engine, in_the_gap[1])).delivered_at is not None
    assert {d.subscriber for d in await deliveries(engine, in_the_gap)} == {kept.name}

    # Its first pass owes the new subscriber what was dispatched since its start...
    await new.run_pass(_start_nothing)
    # ...and after it, whichever relay dispatches, the new subscriber is fanned out to.
    later = await _publish(sessions, created, f"agg-{run}-2")
    await old.run_pass(_start_nothing)
    await new.run_pass(_start_nothing)

    owed = {
        d.event_id: d
        for d in await deliveries(engine, [history, *in_the_gap, later])
        if d.subscriber == added.name
    }
    assert set(owed) == {*in_the_gap, later}  # none of the history, none missed
    assert {d.status for d in owed.values()} == {DeliveryStatus.PENDING}
    # The event nobody had wanted is owed again, until its new delivery finishes.
    assert (await _outbox(engine, in_the_gap[1])).delivered_at is None
    # Later passes (and other relays of the new code) owe nothing twice.
    await RelayService(sessions, [kept, added]).run_pass(_start_nothing)
    rows = await deliveries(engine, [history, *in_the_gap, later])
    assert len([d for d in rows if d.subscriber == added.name]) == 3
