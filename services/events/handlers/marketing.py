"""Subscriber ``marketing``: the customer's SendGrid Marketing contact.

``order.created``, ``order.cancelled``, ``payment.refunded`` and ``payment.refund_failed``
(and ``order.failed`` or ``payment.failed`` of an order that had been counted) upsert the
contact with the lifetime value, orders count and last order date the ledger gives with
the event entered (``order.created`` also adds them to the customers list: the seed's
``triggerOrderConfirmation``); ``user.deleted`` deletes the contact. The provider calls
are idempotent by nature (PUT by email with absolute values; deleting what is gone
finds nothing), so a call repeated after a crash changes nothing.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from core.events import EventType
from integrations.marketing.client import MarketingClient
from services.events.subscribers import DomainEvent, Handler, Subscriber
from services.marketing import MarketingService

MARKETING_EVENTS = frozenset(
    {
        EventType.ORDER_CREATED,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_FAILED,
        EventType.PAYMENT_FAILED,
        EventType.PAYMENT_REFUNDED,
        EventType.PAYMENT_REFUND_FAILED,
        EventType.USER_DELETED,
    }
)


def marketing_handler(client: MarketingClient, sessions: SessionFactory) -> Handler:
    async def update_marketing_contact(event: DomainEvent, session: AsyncSession) -> None:
        service = MarketingService(session, client, sessions)
        if event.type is EventType.USER_DELETED:
            await service.erase(str(event.data["userId"]))
        else:
            await service.sync_customer(event)

    return update_marketing_contact


def marketing_subscriber(client: MarketingClient, sessions: SessionFactory) -> Subscriber:
    """``sessions``: where the contacts' addresses are recorded before each upsert."""
    return Subscriber("marketing", MARKETING_EVENTS, marketing_handler(client, sessions))
