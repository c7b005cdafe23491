"""``publish``: add a domain event to the outbox inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import AGGREGATE_OF, EventType
from models.outbox import OutboxEvent


async def publish(
    session: AsyncSession, type: EventType, aggregate_id: str, data: dict[str, Any]
) -> OutboxEvent:
    """Write ``type`` for ``aggregate_id`` to the outbox; it commits (or not) with the caller.

    The row is flushed so that a constraint problem surfaces here, inside the caller's
    transaction, rather than at its commit.
    """
    if type not in AGGREGATE_OF:
        raise ValueError(f"{type!r} is not in the event catalogue (core/events.py)")
    event_type = EventType(type)
    event = OutboxEvent(
        type=event_type,
        aggregate_type=AGGREGATE_OF[event_type],
        aggregate_id=aggregate_id,
        data=data,
    )
    session.add(event)
    await session.flush()
    return event
