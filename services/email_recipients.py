"""Whom a customer's email goes to when it is sent, not when a workflow asked for it.

A workflow carries the address and name it was given for as long as it runs: 3-D
Secure can keep an order open for 15 minutes, a fulfilment for days, and an email step
is retried for hours while the provider is down (a welcome email right after sign-up, a
cart reminder). An account erased meanwhile has its address (and its orders') rewritten
to an undeliverable one (``services/users.py``) and must hear nothing more; so the email
step reads the order or the account again, as the event subscribers' emails do, and
holds the account until the provider has the message (an erasure waits for it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from services.order_repository import OrderRepository
from services.users import UserRepository

# The customer's emails about their order, sent by OrderWorkflow and FulfillmentWorkflow:
# to the order's address (which the customer chose at checkout).
ORDER_CUSTOMER_TEMPLATES = frozenset({"order_confirmation", "order_cancelled", "order_failed"})


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


def reads_recipient(template: str, order_id: str | None, user_id: str | None) -> bool:
    """Whether the email's recipient is read when it is sent: an order's email to its
    customer, or any email naming the account it is for (welcome, cart reminder)."""
    return bool(order_id and template in ORDER_CUSTOMER_TEMPLATES) or bool(user_id)


@asynccontextmanager
async def held_recipient(
    sessions: SessionFactory, template: str, order_id: str | None, user_id: str | None
) -> AsyncIterator[Recipient | None]:
    """The address and name to write to now: for an order's email the order's address
    and its account's name, otherwise the account's; None when the account was closed
    (erased) or the order is unknown: nobody to write to.

    Send the email inside the block: the account is held until it ends
    (``UserRepository.hold``), so an erasure committing meanwhile waits for the provider
    to have the message, and none read before it is sent after it."""
    async with transaction(sessions) as session:
        yield await _recipient(session, template, order_id, user_id)


async def _recipient(
    session: AsyncSession, template: str, order_id: str | None, user_id: str | None
) -> Recipient | None:
    if order_id and template in ORDER_CUSTOMER_TEMPLATES:
        addressee = await OrderRepository(session).addressee(order_id)
        if addressee is None:
            return None
        user_id, email = addressee
    else:
        email = None
    # Read after the order: an erasure that rewrote the order's address since is seen here.
    user = await UserRepository(session).hold_contact(user_id) if user_id else None
    if user is None:
        return None
    return Recipient(email=email or user.email, name=user.name or "there")
