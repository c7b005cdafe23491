"""Whom an order's email goes to when it is sent, not when the order was placed.

A workflow carries the order's snapshot (address and name as at checkout) for as long
as it runs: 3-D Secure can keep an order open for 15 minutes, a fulfilment for days.
An account erased meanwhile has its orders' address rewritten to an undeliverable one
(``services/users.py``) and must hear nothing more; so the email step reads the order
and its account again, as the event subscribers' emails do."""

from __future__ import annotations

from dataclasses import dataclass

from core.db import SessionFactory, transaction
from services.order_repository import OrderRepository
from services.users import UserRepository

# The customer's emails about their order, sent by OrderWorkflow and FulfillmentWorkflow.
ORDER_CUSTOMER_TEMPLATES = frozenset({"order_confirmation", "order_cancelled", "order_failed"})


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


async def order_recipient(sessions: SessionFactory, order_id: str) -> Recipient | None:
    """The order's address now and its account's name, or None when the account was
    closed (erased) or the order is unknown: nobody to write to."""
    async with transaction(sessions) as session:
        order = await OrderRepository(session).get(order_id)
        if order is None:
            return None
        user = await UserRepository(session).get(order.user_id)
        if user is None:
            return None
        return Recipient(email=order.email, name=user.name or "there")
