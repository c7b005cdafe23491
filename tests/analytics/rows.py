"""Keyword-only factories of raw rows the analytics rollups read: events, orders (with
lines and a payment), refunds (``payment.refunded`` outbox rows, and
``payment.refund_failed`` ones of refunds that failed later), users and products."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.ids import IdPrefix, new_id
from models.analytics import AnalyticsEvent
from models.base import utcnow
from models.catalog import Product
from models.inventory import StockLevel
from models.orders import Order, OrderLine, OrderStatus
from models.outbox import OutboxEvent
from models.payments import Payment, PaymentStatus
from models.users import Role, User, UserStatus

ADDRESS = {"street": "1 Main St", "city": "Boston", "state": "MA", "zip": "02101"}


def event(
    name: str,
    person: str,
    at: datetime,
    *,
    received_at: datetime | None = None,
    **properties: object,
) -> AnalyticsEvent:
    return AnalyticsEvent(
        event=name,
        person_id=person,
        user_id=person if person.startswith("user_") else None,
        properties=dict(properties),
        created_at=at,
        received_at=received_at or utcnow(),
    )


async def user(session: AsyncSession) -> User:
    row = User(
        email=f"{new_id(IdPrefix.USER)}@example.com",
        name="Analyst",
        password_hash="x",
        role=Role.CUSTOMER,
        status=UserStatus.ACTIVE,
    )
    session.add(row)
    await session.flush()
    return row


async def product(session: AsyncSession, *, name: str, available: int, threshold: int) -> Product:
    row = Product(
        sku=new_id(IdPrefix.PRODUCT),
        name=name,
        slug=new_id(IdPrefix.PRODUCT).lower(),
        price=1000,
        currency="USD",
        low_stock_threshold=threshold,
    )
    session.add(row)
    await session.flush()
    session.add(StockLevel(product_id=row.id, on_hand=available))
    await session.flush()
    return row


async def order(
    session: AsyncSession,
    *,
    user_id: str,
    at: datetime,
    total: int,
    lines: list[tuple[str, int, int]],
    currency: str = "USD",
    status: OrderStatus = OrderStatus.CONFIRMED,
    captured: int | None = None,
) -> Order:
    """``lines``: (product id, quantity, line total); ``captured`` defaults to the total
    for a paid status, else nothing."""
    row = Order(
        user_id=user_id,
        cart_id=new_id(IdPrefix.CART),
        email="analyst@example.com",
        status=status,
        currency=currency,
        total=total,
        shipping_address=ADDRESS,
        payment_method_type="card",
        payment_token="pm_card_visa",
        created_at=at,
    )
    session.add(row)
    await session.flush()
    for product_id, quantity, line_total in lines:
        session.add(
            OrderLine(
                order_id=row.id,
                product_id=product_id,
                name=product_id,
                quantity=quantity,
                list_price=line_total // quantity,
                unit_price=line_total // quantity,
                line_total=line_total,
            )
        )
    paid = status not in (OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.PENDING)
    amount = captured if captured is not None else (total if paid else 0)
    session.add(
        Payment(
            order_id=row.id,
            provider="stripe",
            amount=total,
            currency=currency,
            status=PaymentStatus.CAPTURED if amount else PaymentStatus.FAILED,
            amount_captured=amount,
            created_at=at,
        )
    )
    await session.flush()
    return row


def refund(order_id: str, *, amount: int, currency: str, at: datetime) -> OutboxEvent:
    return OutboxEvent(
        type=str(EventType.PAYMENT_REFUNDED),
        aggregate_type="order",
        aggregate_id=order_id,
        data={"orderId": order_id, "amount": amount, "currency": currency},
        created_at=at,
    )


def refund_failed(order_id: str, *, amount: int, currency: str, at: datetime) -> OutboxEvent:
    """A refund the card's bank sent back (``amount``: what is no longer refunded)."""
    return OutboxEvent(
        type=str(EventType.PAYMENT_REFUND_FAILED),
        aggregate_type="order",
        aggregate_id=order_id,
        data={
            "orderId": order_id,
            "refundId": "re_bounced",
            "amount": amount,
            "currency": currency,
        },
        created_at=at,
    )
