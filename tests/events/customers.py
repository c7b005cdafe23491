"""Customers, orders and their events, written as the services write them."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.orders import Order, OrderStatus
from models.users import Role, User, UserStatus
from services.events.handlers.lifetime_value import LIFETIME_VALUE
from services.events.handling import handle_once
from tests.factories import unique_email


async def create_customer(
    session: AsyncSession, *, name: str = "Ada Lovelace", email: str | None = None
) -> User:
    user = User(
        email=email or unique_email("ltv"),
        name=name,
        password_hash="x",
        role=Role.CUSTOMER,
        status=UserStatus.ACTIVE,
    )
    session.add(user)
    await session.flush()
    return user


async def create_order(
    session: AsyncSession, user: User, *, total: int, currency: str = "USD"
) -> Order:
    order = Order(
        user_id=user.id,
        cart_id=f"cart_{uuid4().hex[:20]}",
        email=user.email,
        status=OrderStatus.CONFIRMED,
        currency=currency,
        subtotal=total,
        total=total,
        shipping_address={},
        payment_method_type="card",
        payment_token="pm_card_visa",
    )
    session.add(order)
    await session.flush()
    return order


def order_created(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.id,
        "userId": order.user_id,
        "total": order.total,
        "currency": order.currency,
        "items": [],
    }


def order_cancelled(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.id,
        "userId": order.user_id,
        "failureCode": None,
        "reason": "changed my mind",
        "total": order.total,
        "currency": order.currency,
    }


def payment_refunded(order: Order, amount: int) -> dict[str, Any]:
    return {"orderId": order.id, "amount": amount, "currency": order.currency}


async def published(
    sessions: SessionFactory, type: EventType, aggregate_id: str, data: dict[str, Any]
) -> str:
    """A real outbox row, committed as its writer commits it; returns the event id."""
    async with transaction(sessions) as session:
        return (await publish(session, type, aggregate_id, data)).id


async def deliver_twice(sessions: SessionFactory, event_id: str) -> None:
    """Deliver to the lifetime value twice, as an at-least-once relay may: the second
    changes nothing."""
    assert await handle_once(sessions, LIFETIME_VALUE, event_id) is True
    assert await handle_once(sessions, LIFETIME_VALUE, event_id) is False


async def delivered(
    sessions: SessionFactory, type: EventType, aggregate_id: str, data: dict[str, Any]
) -> str:
    """``published``, then delivered to the lifetime value twice; returns the event id."""
    event_id = await published(sessions, type, aggregate_id, data)
    await deliver_twice(sessions, event_id)
    return event_id


async def customer(sessions: SessionFactory, user_id: str) -> User:
    async with sessions() as session:
        user = await session.get(User, user_id, populate_existing=True)
        assert user is not None
        return user


def refund_failed(order: Order, amount: int, refund_id: str = "re_bounced") -> dict[str, Any]:
    """``payment.refund_failed`` as ``RefundFailures.record`` publishes it (balance left out)."""
    return {
        "orderId": order.id,
        "refundId": refund_id,
        "amount": amount,
        "currency": order.currency,
        "reason": "expired_or_canceled_card",
    }
