"""``publish``: add a domain event to the outbox inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import AGGREGATE_OF, EventType
from core.telemetry import current_traceparent
from models.outbox import OutboxEvent


async def publish(
    session: AsyncSession, type: EventType, aggregate_id: str, data: dict[str, Any]
) -> OutboxEvent:
    """Write ``type`` for ``aggregate_id`` to the outbox; it commits (or not) with the caller.

    The row keeps the W3C traceparent of the span being handled (the request's, the
    activity's), so that the relay's deliveries of the event join that trace.

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
        traceparent=current_traceparent(),
    )
    session.add(event)
    await session.flush()
    return event
