"""``payment.refund_failed``: a refund the card's bank sent back, days after Stripe said
``succeeded`` (``services/refund_failures.py`` publishes it). Staff are alerted, with what
to do, and the customer is emailed that the refund did not reach them and what happens
next (their notification is the ``notifications`` subscriber's).

Each email goes through the email ledger under ``{subscriber}:{eventId}``: a redelivered
event sends nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.money import DEFAULT_CURRENCY
from core.settings import Settings
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from services.order_repository import OrderRepository
from services.users import UserRepository

log = logging.getLogger(__name__)

REFUND_FAILED = frozenset({EventType.PAYMENT_REFUND_FAILED})
CUSTOMER_TEMPLATE = "refund_failed"
STAFF_TEMPLATE = "refund_failed_staff"
# Stripe's ``failure_reason`` of a refund, as the customer is told it.
WHY: dict[str, str] = {
    "expired_or_canceled_card": "the card it was sent to has expired or was cancelled",
    "lost_or_stolen_card": "the card it was sent to was reported lost or stolen",
}
BANK_SENT_IT_BACK = "your bank sent it back to us"


def explain_refund_failure(reason: str | None) -> str:
    """Why the money did not arrive, in a clause (never Stripe's code)."""
    return WHY.get(reason or "", BANK_SENT_IT_BACK)


def refund_amount(data: dict[str, Any]) -> int:
    """The failed refund's own amount (what did not reach the customer), not what the
    payment's refunded amount came down by (``amount``: 0 for a refund never counted);
    events written before ``refundAmount`` carry ``amount`` only."""
    return int(data.get("refundAmount", data.get("amount")) or 0)


def refund_failed_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email ``FULFILLMENT_ALERT_EMAIL`` (else ``INVENTORY_ALERT_EMAIL``): which refund
    failed, why, and what to do: settle the return (its refund failed, it is ``received``
    again), or refund the order again."""
    name = "refund_failed_alert"

    async def email_staff(event: DomainEvent, session: AsyncSession) -> None:
        data = event.data
        order_id = str(data["orderId"])
        return_id = str(data["returnId"]) if data.get("returnId") else None
        base = f"{settings.api_base_url}/api/admin"
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=STAFF_TEMPLATE,
            to=settings.fulfillment_alert_email or settings.inventory_alert_email,
            context={
                "order_id": order_id,
                "refund_id": str(data.get("refundId") or ""),
                "amount": refund_amount(data),
                "currency": str(data.get("currency") or DEFAULT_CURRENCY),
                "reason": str(data.get("reason") or "unknown"),
                "return_id": return_id,
                "action_url": (
                    f"{base}/returns/{return_id}/settle"
                    if return_id
                    else f"{base}/orders/{order_id}/refunds"
                ),
            },
        )

    return Subscriber(name, REFUND_FAILED, email_staff)


def refund_failed_email(emails: EmailService, settings: Settings) -> Subscriber:
    """One email to the customer: the refund did not reach them, why, and that the money
    is refunded again (staff were alerted). None for a closed account."""
    name = "refund_failed_email"

    async def email_customer(event: DomainEvent, session: AsyncSession) -> None:
        data = event.data
        order = await OrderRepository(session).require(str(data["orderId"]))
        user = await UserRepository(session).hold(order.user_id)
        if user is None:
            log.info("refund failed for a closed account: no email", extra={"order": order.id})
            return
        await emails.deliver(
            key=f"{name}:{event.id}",
            template=CUSTOMER_TEMPLATE,
            to=order.email,
            context={
                "name": user.name or "there",
                "order_id": order.id,
                "amount": refund_amount(data),
                "currency": str(data.get("currency") or order.currency),
                "why": explain_refund_failure(str(data.get("reason") or "")),
                "return_id": str(data["returnId"]) if data.get("returnId") else None,
                "order_url": f"{settings.api_base_url}/api/orders/{order.id}",
            },
        )

    return Subscriber(name, REFUND_FAILED, email_customer)
