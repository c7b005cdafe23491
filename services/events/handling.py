"""Running one subscriber's handler for one event, once in effect."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.errors import NotFound
from services.events.repository import EventRepository
from services.events.subscribers import DomainEvent, Subscriber


class EventGone(NotFound):
    code = "event_not_found"
    title = "Event not found"


async def handle_once(sessions: SessionFactory, subscriber: Subscriber, event_id: str) -> bool:
    """Run ``subscriber`` for the event in one transaction with its receipt.

    Returns False, running nothing, when the receipt shows it ran before. A handler error
    rolls back its database effects and the receipt together.
    """
    async with transaction(sessions) as session:
        return await handle_in(session, subscriber, event_id)


async def handle_in(session: AsyncSession, subscriber: Subscriber, event_id: str) -> bool:
    """``handle_once`` inside the caller's transaction, so that more (the delivery's
    status) commits with the receipt and the handler's effects."""
    return await handle_event_in(session, subscriber, await load_event(session, event_id))


async def load_event(session: AsyncSession, event_id: str) -> DomainEvent:
    event = await EventRepository(session).event(event_id)
    if event is None:
        raise EventGone(f"event {event_id} is not in the outbox (pruned or never written)")
    return event


async def handle_event_in(
    session: AsyncSession, subscriber: Subscriber, event: DomainEvent
) -> bool:
    """Run the handler unless the receipt shows it ran; False if it had."""
    if not await EventRepository(session).claim_receipt(event.id, subscriber.name):
        return False
    await subscriber.handle(event, session)
    return True
