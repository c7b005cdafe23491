"""Whom a customer's email goes to when it is sent, not when a workflow asked for it.

A workflow carries the address and name it was given for as long as it runs: 3-D
Secure can keep an order open for 15 minutes, a fulfilment for days, and an email step
is retried for hours while the provider is down (a welcome email right after sign-up, a
cart reminder). An account erased meanwhile has its address (and its orders') rewritten
to an undeliverable one (``services/users.py``) and must hear nothing more; so the email
step reads the order or the account again, as the event subscribers' emails do."""

from __future__ import annotations

from dataclasses import dataclass

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


async def recipient_now(
    sessions: SessionFactory, template: str, order_id: str | None, user_id: str | None
) -> Recipient | None:
    """The address and name to write to now: for an order's email the order's address
    and its account's name, otherwise the account's; None when the account was closed
    (erased) or the order is unknown: nobody to write to."""
    async with transaction(sessions) as session:
        if order_id and template in ORDER_CUSTOMER_TEMPLATES:
            order = await OrderRepository(session).get(order_id)
            if order is None:
                return None
            user_id, email = order.user_id, order.email
        else:
            email = None
        user = await UserRepository(session).get(user_id) if user_id else None
        if user is None:
            return None
        return Recipient(email=email or user.email, name=user.name or "there")
