"""Customers as marketing contacts: their lifetime value, orders and last order date.

The contact is written with absolute values by email, so writing it twice changes
nothing. The values are what the lifetime value ledger says *with the event being
handled entered* (``LifetimeValueService.project``): the marketing subscriber may run
before or after the ``lifetime_value`` subscriber for the same event and sends the same
contact either way. Two orders of one customer handled at the same moment can still
race (each projects its own event onto a ledger that may not show the other yet); the
customer's next event writes the contact again from the ledger and corrects it.

Erasure: ``user.deleted`` arrives after the account was anonymised, so the addresses to
delete at the provider are those recorded in ``marketing_contacts``. An address is
recorded, and committed on its own, *before* its upsert is sent: an upsert the provider
kept whose answer was lost rolls the handler's transaction back, and an account deleted
before the retry must still find that address to erase (the retry then finds the
account closed and sends nothing).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.money import Money
from integrations.marketing.client import CustomerContact, MarketingClient
from models.base import utcnow
from models.marketing import MarketingContact
from models.users import User
from services.customers import ENDINGS, LifetimeTotals, LifetimeValueService
from services.events.subscribers import DomainEvent
from services.users import UserRepository


class MarketingContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def remember(self, user_id: str, email: str) -> None:
        await self.session.exec(
            insert(MarketingContact)
            .values(user_id=user_id, email=email, synced_at=utcnow())
            .on_conflict_do_update(
                index_elements=[col(MarketingContact.user_id), col(MarketingContact.email)],
                set_={"synced_at": utcnow()},
            )
        )

    async def emails(self, user_id: str) -> list[str]:
        result = await self.session.exec(
            select(MarketingContact.email).where(MarketingContact.user_id == user_id)
        )
        return list(result.all())

    async def forget(self, user_id: str, emails: list[str] | None = None) -> None:
        """Drop the user's recorded addresses (those given, or all)."""
        statement = delete(MarketingContact).where(col(MarketingContact.user_id) == user_id)
        if emails is not None:
            statement = statement.where(col(MarketingContact.email).in_(emails))
        await self.session.exec(statement)


def contact_of(user: User, totals: LifetimeTotals) -> CustomerContact:
    first, _, last = user.name.partition(" ")
    value = (
        Money(totals.lifetime_value, totals.currency).to_major() if totals.currency else Decimal(0)
    )
    return CustomerContact(
        email=user.email,
        first_name=first or None,
        last_name=last or None,
        lifetime_value=value,
        orders_count=totals.orders_count,
        last_order_date=totals.last_order_at.date() if totals.last_order_at else None,
    )


class MarketingService:
    def __init__(
        self, session: AsyncSession, client: MarketingClient, sessions: SessionFactory
    ) -> None:
        """``session``: the handler's transaction; ``sessions``: for recording an address
        before it is sent to the provider, committed whatever the handler then does."""
        self.session = session
        self.contacts = MarketingContactRepository(session)
        self.client = client
        self.sessions = sessions

    async def sync_customer(self, event: DomainEvent) -> bool:
        """Upsert the customer of an order event; at ``order.created`` they also join the
        customers list (the seed's ``triggerOrderConfirmation``). False: no one to sync
        (a refund of an order never counted, or an erased account)."""
        values = LifetimeValueService(self.session)
        projection = await values.project(event)
        if projection is None:
            return False
        if event.type in ENDINGS and not await values.was_counted(event):
            return False  # an order that ended before it counted makes no one a customer
        # Held until the transaction ends: an erasure of the account waits for this
        # contact's upsert, so its ``user.deleted`` cannot overtake it.
        user = await UserRepository(self.session).hold(projection.user_id)
        if user is None:
            return False
        # Committed before the call: an erasure must find it even if this transaction
        # rolls back after the provider kept the contact (its answer lost).
        async with transaction(self.sessions) as ledger:
            await MarketingContactRepository(ledger).remember(user.id, user.email)
        await self.client.upsert_customer(
            contact_of(user, projection.totals),
            add_to_list=event.type is EventType.ORDER_CREATED,
        )
        # A changed address made a new contact: the one under the old address goes.
        stale = [e for e in await self.contacts.emails(user.id) if e != user.email]
        if stale:
            await self.client.delete_contacts(stale)
            await self.contacts.forget(user.id, stale)
        return True

    async def erase(self, user_id: str) -> int:
        """Delete every contact we made for the user; returns how many the provider had."""
        emails = await self.contacts.emails(user_id)
        deleted = await self.client.delete_contacts(emails) if emails else 0
        await self.contacts.forget(user_id)
        return deleted
