"""``event_subscriptions`` forgets the pairs no relay has known for far longer than the
grace (``EVENT_SUBSCRIPTION_RETENTION_SECONDS``), on real PostgreSQL: a relay pass that
beats deletes them. A pair a relay knows within the grace is never forgotten, and its
pending deliveries are never dropped; a forgotten pair's are dropped as an unknown one's
are. Before, every pair any worker had ever known stayed for good."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from models.events import DeliveryStatus, EventDelivery, EventSubscription
from services.events.relay import RelayService
from services.events.subscribers import DomainEvent, Subscriber
from services.events.subscriptions import SubscriptionRepository
from tests.events.relay_support import deliveries, run_id
from workflows.types.events import DeliveryBatch

GRACE = timedelta(minutes=10)
FORGET_AFTER = timedelta(hours=1)


async def _start_nothing(batches: Sequence[DeliveryBatch]) -> list[str]:
    return []


async def _ignore(event: DomainEvent, session: AsyncSession) -> None:
    return None


async def _known_at(engine: AsyncEngine, pairs: dict[tuple[str, str], timedelta]) -> None:
    """Each pair as last known ``ago`` (written as a relay's beat, then aged)."""
    async with transaction(create_session_factory(engine)) as session:
        await SubscriptionRepository(session).beat(pairs)
        for (name, event_type), ago in pairs.items():
            await session.exec(
                update(EventSubscription)
                .where(
                    col(EventSubscription.subscriber) == name,
                    col(EventSubscription.event_type) == event_type,
                )
                .values(known_at=func.now() - ago)
            )


async def _names(engine: AsyncEngine, run: str) -> set[str]:
    async with create_session_factory(engine)() as session:
        known = await SubscriptionRepository(session).all()
    return {k.subscriber for k in known if k.subscriber.endswith(run)}


async def _pass(engine: AsyncEngine, own: Subscriber) -> None:
    relay = RelayService(
        create_session_factory(engine),
        [own],
        grace=GRACE,
        beat_every=timedelta(0),
        forget_after=FORGET_AFTER,
    )
    await relay.run_pass(_start_nothing)


async def test_pairs_unknown_for_the_retention_are_forgotten_never_a_live_one(
    engine: AsyncEngine,
) -> None:
    run = run_id()
    created = str(EventType.ORDER_CREATED)
    own = Subscriber(f"own_{run}", frozenset({EventType.ORDER_CREATED}), _ignore)
    other, paused, gone = f"other_{run}", f"paused_{run}", f"gone_{run}"
    await _known_at(
        engine,
        {
            (other, created): timedelta(minutes=1),  # another live relay's
            (paused, created): GRACE + timedelta(minutes=5),  # unknown, not for long
            (gone, created): timedelta(days=8),  # a worker long gone
        },
    )
    async with transaction(create_session_factory(engine)) as session:
        event = await publish(session, EventType.ORDER_CREATED, f"agg-{run}", {"run": run})
    await _pass(engine, own)
    assert await _names(engine, run) == {own.name, other, paused}
    fanned = {d.subscriber: d for d in await deliveries(engine, [event.id])}
    assert set(fanned) == {own.name, other}  # only the pairs known within the grace

    # The other relay's delivery waits past the grace: its pair is known, so it is kept
    # (pending), and so is the pair.
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(EventDelivery)
            .where(col(EventDelivery.event_id) == event.id)
            .values(created_at=func.now() - GRACE - timedelta(minutes=1))
        )
    await _pass(engine, own)
    assert await _names(engine, run) == {own.name, other, paused}
    fanned = {d.subscriber: d for d in await deliveries(engine, [event.id])}
    assert fanned[other].status == DeliveryStatus.PENDING

    # That relay is gone for longer than the retention: its pair is forgotten and its
    # delivery dropped, as an unknown pair's is.
    await _known_at(engine, {(other, created): FORGET_AFTER + timedelta(minutes=1)})
    await _pass(engine, own)
    assert await _names(engine, run) == {own.name, paused}
    fanned = {d.subscriber: d for d in await deliveries(engine, [event.id])}
    assert fanned[other].status == DeliveryStatus.DROPPED


async def test_the_retention_is_well_beyond_the_grace(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="twice the grace"):
        RelayService(create_session_factory(engine), [], grace=GRACE, forget_after=GRACE)
