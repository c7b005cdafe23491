"""Subscriber ``lifetime_value``: orders, refunds (and those that bounced) and cancellations
into the customer's lifetime value (``services/customers.py``), in the transaction of the
event's receipt."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.customers import LIFETIME_VALUE_EVENTS, LifetimeValueService
from services.events.subscribers import DomainEvent, Subscriber


async def record_lifetime_value(event: DomainEvent, session: AsyncSession) -> None:
    await LifetimeValueService(session).record(event)


LIFETIME_VALUE = Subscriber("lifetime_value", LIFETIME_VALUE_EVENTS, record_lifetime_value)
