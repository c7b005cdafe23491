"""``payment.failed`` and ``payment.refunded``: the customer's emails, and a counter of
failed payments an alert can use.

Each email goes through the email ledger under a key made of the subscriber's name and
the event's id, so a redelivered event (or one whose commit was lost after the provider
took the message) sends nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import NotFound
from core.events import EventType
from core.settings import Settings
from core.shared_metrics import SharedCounters, declare
from models.carts import CartStatus
from models.orders import PAYMENT_FAILURES, Order
from models.payments import Payment
from services.cart_repository import CartRepository
from services.email import EmailService
from services.events.handlers.payment_failures import explain
from services.events.subscribers import DomainEvent, Subscriber
from services.order_repository import OrderRepository
from services.users import UserRepository

log = logging.getLogger(__name__)

PAYMENT_FAILED_TEMPLATE = "payment_failed"
REFUND_TEMPLATE = "refund_issued"
PAYMENT_FAILURES_COUNTER = declare(
    "shop_payment_failures",
    "Failed payments by failure code: one per payment.failed event, however often the "
    "event is delivered.",
    ("code",),
)


class PaymentMissing(NotFound):
    code = "payment_not_found"
    title = "The order has no payment"


def payment_failed_email(emails: EmailService, settings: Settings) -> Subscriber:
    """One email to the customer: what failed, in a sentence, and how to try again."""
    name = "payment_failed_email"

    async def email_customer(event: DomainEvent, session: AsyncSession) -> None:
        order = await OrderRepository(session).require(str(event.data["orderId"]))
        customer = await _customer_name(session, order)
        if customer is None:
            log.info("payment failed for a closed account: no email", extra={"order": order.id})
            return
        explanation = explain(_text(event.data.get("failureCode")), _text(event.data.get("reason")))
        # The workflow's compensation reopened the cart before the order was closed (and
        # the event published), unless the customer had started another one meanwhile.
        cart = await CartRepository(session).get(order.cart_id)
        base = settings.api_base_url
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=PAYMENT_FAILED_TEMPLATE,
            to=order.email,
            context={
                "name": customer,
                "order_id": order.id,
                "total": int(event.data.get("total", order.total)),
                "currency": str(event.data.get("currency", order.currency)),
                "what_failed": explanation.what_failed,
                "how_to_retry": explanation.how_to_retry,
                "cart_open": cart is not None and cart.status == CartStatus.ACTIVE,
                "cart_url": f"{base}/api/cart",
                "order_url": f"{base}/api/orders/{order.id}",
            },
        )

    return Subscriber(name, frozenset({EventType.PAYMENT_FAILED}), email_customer)


def payment_failure_metrics(redis: Redis) -> Subscriber:
    """``shop_payment_failures_total{code}``, once per failed payment.

    Redis is not part of the handler's transaction: a plain increment followed by a
    failed commit would count again on redelivery. ``incr_once`` marks the event as
    counted in the same atomic Redis step as the increment, so a redelivery (or a replay
    within the mark's 30 days) counts nothing twice. A subscriber of its own, so that a
    failing email never holds the counter back, nor the counter the email."""

    async def count(event: DomainEvent, session: AsyncSession) -> None:
        code = _text(event.data.get("failureCode"))
        await SharedCounters(redis).incr_once(
            PAYMENT_FAILURES_COUNTER,
            {"code": code if code in PAYMENT_FAILURES else "other"},
            once_key=event.id,
        )

    return Subscriber("payment_failure_metrics", frozenset({EventType.PAYMENT_FAILED}), count)


def refund_email(emails: EmailService, settings: Settings) -> Subscriber:
    """One email per refund, with its amount and the balance left after it."""
    name = "refund_email"

    async def email_customer(event: DomainEvent, session: AsyncSession) -> None:
        if event.data.get("returnId"):
            return  # a return's refund: its customer hears from return.refunded's email
        orders = OrderRepository(session)
        order = await orders.require(str(event.data["orderId"]))
        customer = await _customer_name(session, order)
        if customer is None:
            log.info("refund for a closed account: no email", extra={"order": order.id})
            return
        balance = await _balance(event.data, orders, order)
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=REFUND_TEMPLATE,
            to=order.email,
            context={
                "name": customer,
                "order_id": order.id,
                "amount": int(event.data["amount"]),
                "currency": str(event.data.get("currency") or order.currency),
                "reason": _text(event.data.get("reason")) or "",
                **balance,
                "order_url": f"{settings.api_base_url}/api/orders/{order.id}",
            },
        )

    return Subscriber(name, frozenset({EventType.PAYMENT_REFUNDED}), email_customer)


async def _balance(data: dict[str, Any], orders: OrderRepository, order: Order) -> dict[str, int]:
    """Captured, refunded so far and remaining *as of this refund*: the event carries them
    (written with the refund, so a later refund does not change this one's email). An
    event from before they were published falls back on the payment as it is now."""
    if all(k in data for k in ("captured", "refundedTotal", "remaining")):
        return {
            "captured": int(data["captured"]),
            "refunded_total": int(data["refundedTotal"]),
            "remaining": int(data["remaining"]),
        }
    payment: Payment | None = await orders.payment(order.id)
    if payment is None:
        raise PaymentMissing(f"order {order.id} has no payment to have refunded")
    return {
        "captured": payment.amount_captured,
        "refunded_total": payment.amount_refunded,
        "remaining": payment.amount_captured - payment.amount_refunded,
    }


async def _customer_name(session: AsyncSession, order: Order) -> str | None:
    """Whom to greet, or None when the account is closed (no email then). The account
    is held to the handler's commit: an erasure waits for the email (``UserRepository.hold``)."""
    user = await UserRepository(session).hold(order.user_id)
    if user is None:
        return None
    return user.name or "there"


def _text(value: object) -> str | None:
    return None if value is None else str(value)
