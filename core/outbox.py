"""``publish``: add a domain event to the outbox inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from models.outbox import OutboxEvent


async def publish(
    session: AsyncSession, type: str, aggregate_id: str, data: dict[str, Any]
) -> OutboxEvent:
    """Write ``type`` for ``aggregate_id`` to the outbox; it commits (or not) with the caller.

    The row is flushed so that a constraint problem surfaces here, inside the caller's
    transaction, rather than at its commit.
    """
    if not type or "." not in type:
        raise ValueError(f"event types look like 'order.created', got {type!r}")
    event = OutboxEvent(type=type, aggregate_id=aggregate_id, data=data)
    session.add(event)
    await session.flush()
    return event
