"""A cancelled order's refund that failed at Stripe (its card's bank sent it back) is told
as failed: the compensation says so, staff are alerted (``payment.refund_failed``, as for
a staff refund), and the cancellation's notification and email do not say refunded."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.email import EmailActivities, SendEmailInput
from core.db import create_session_factory, transaction
from core.events import EventType
from integrations.email.factory import build_sender
from integrations.email.templates import EmailTemplates
from integrations.payments.gateway import PaymentUnavailable
from integrations.payments.stripe import StripeGateway
from models.orders import OrderStatus
from services.analytics import AnalyticsRecorder
from services.email import EmailService
from services.events.handlers.notifications import describe
from services.orders import OrderService
from services.payments import PaymentRepository, PaymentService
from tests.factories import unique_email
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.orders.helpers import intents_for, paid_order, refunded
from tests.orders.test_refund_failures import bounce_unannounced
from tests.orders.test_staff_refunds import _RefundAnswerLost


async def test_a_cancel_whose_refund_bounced_is_told_as_not_refunded(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """The compensation refunds the rest, its answer is lost; the card's bank sends the
    refund back before the retry (its ``refund.failed`` not delivered yet). The retry is
    answered with the refund as it stood when made (``succeeded``): read as it stands, it
    failed. Before, the compensation answered "refunded", nothing alerted staff, and the
    cancellation told the customer the money was refunded."""
    shopper, placed = await paid_order(http, staff)
    order_id, total = placed["id"], placed["totals"]["total"]
    sessions = create_session_factory(engine)
    analytics = AnalyticsRecorder(enabled=False)

    def service(gateway: StripeGateway) -> PaymentService:
        return PaymentService(sessions, gateway, live.settings, analytics)

    with pytest.raises(PaymentUnavailable):
        await service(_RefundAnswerLost.from_settings(live.settings)).void_or_refund(order_id)
    # Its refund.failed is not delivered yet: the failure is read from Stripe.
    made, held = await bounce_unannounced(
        http, live, sessions, order_id, "expired_or_canceled_card"
    )
    [intent] = await intents_for(http, order_id)

    gateway = StripeGateway.from_settings(live.settings)
    assert await service(gateway).void_or_refund(order_id) == "refund failed"
    assert await refunded(http, intent["id"]) == 0
    async with sessions() as session:
        [told] = await published(session, order_id, EventType.PAYMENT_REFUND_FAILED)
        assert await published(session, order_id, EventType.PAYMENT_REFUNDED) == []
        payment = await PaymentRepository(session).for_order(order_id)
    assert (told.data["refundId"], told.data["amount"]) == (made["id"], total)
    assert payment is not None
    assert (payment.status, payment.amount_refunded) == ("captured", 0)

    # Retried again (or the late webhook): recorded and told once.
    assert await service(gateway).void_or_refund(order_id) == "refund failed"
    late = await http.post(
        "/api/payments/webhooks/stripe",
        content=held.payload,
        headers={"Stripe-Signature": held.signature, "Content-Type": "application/json"},
    )
    assert late.status_code == 200, late.text
    async with sessions() as session:
        assert len(await published(session, order_id, EventType.PAYMENT_REFUND_FAILED)) == 1

    async with transaction(sessions) as session:
        orders = OrderService(session, live.settings, analytics)
        assert await orders.close(order_id, OrderStatus.CANCELLED, None, "changed my mind")
    async with sessions() as session:
        [cancelled] = await published(session, order_id, EventType.ORDER_CANCELLED)
    assert cancelled.data["unrefunded"] == total
    _kind, _title, body = describe(EventType.ORDER_CANCELLED, order_id, cancelled.data)
    assert "refunded." not in body.replace("refunded again", "")
    assert "did not go through" in body

    # The workflow's order_cancelled email, sent as the workers send it: it reads the
    # payment when sent, and tells the same (to the order's address then, whatever the
    # workflow's copy says).
    emails = EmailService(
        sessions, build_sender(live.settings), EmailTemplates(), live.settings.email_from
    )
    to = shopper.user["email"]
    await EmailActivities(emails, sessions).send_email(
        SendEmailInput(
            idempotency_key=f"order_cancelled:{order_id}",
            template="order_cancelled",
            to=unique_email("snapshot"),
            context={
                "name": "Ann",
                "order_id": order_id,
                "total": total,
                "currency": "USD",
                "reason": "changed my mind",
            },
        )
    )
    mailbox = (await http.get("/_sandbox/mail/messages", params={"to": to})).json()
    [mail] = [m for m in mailbox if m["subject"].endswith("is cancelled")]
    assert "is being refunded" not in mail["text"]
    assert "did not go through" in mail["text"]
