"""Two refunds of one payment that the card's bank sends back close together: both are
out of Stripe's refunded total before the first ``refund.failed`` is recorded. Each
``payment.refund_failed`` gives back its own refund's money, so the analytics and the
customer's lifetime value count each bounce once."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import create_session_factory, transaction
from core.events import EventType
from core.settings import SANDBOX_WEBHOOK_SECRET, Settings
from integrations.sandbox.stripe import StripeSandbox
from models.analytics_rollups import AnalyticsRefundHour
from models.customers import LedgerKind, LifetimeValueEntry
from models.orders import Order
from models.outbox import OutboxEvent
from services import payments
from services.analytics.rollups import RollupService
from services.events.handlers.lifetime_value import LIFETIME_VALUE
from services.events.handling import handle_once
from tests.events.customers import customer, order_created
from tests.events.customers import published as publish_committed
from tests.fulfillment_rows import published
from tests.services.payment_rows import order_of, payment_service

# An hour of its own, long past, for this test's copy of its refund events.
HOUR = datetime(2025, 6, 17, 9, tzinfo=UTC)


async def test_two_refunds_bouncing_together_each_give_back_their_own_amount(
    engine: AsyncEngine, stripe_api: tuple[Settings, str]
) -> None:
    """50.00 captured; 10.00 and 15.00 refunded by staff; both sent back before either
    ``refund.failed`` is handled. The two events say 10.00 and 15.00 (before: 25.00 and
    0, so the analytics counted one bounce of two, the lifetime value one entry)."""
    live, base = stripe_api
    sessions = create_session_factory(engine)
    order = await order_of(engine, total=5000)
    service = payment_service(engine, live)
    await service.authorize(order.id)
    await service.capture(order.id)
    made = []
    for amount in (1000, 1500):
        async with transaction(sessions) as session:
            row = await session.get(Order, order.id)
            assert row is not None
            outcome = await payments.refund(
                session, service.gateway, row, amount=amount, reason="dented", staff_id=None
            )
            made.append(outcome.refund_id)

    # The card's bank sends both back; their webhooks are held until both have failed.
    secret = live.resolved_stripe_webhook_secret or SANDBOX_WEBHOOK_SECRET
    async with transaction(sessions) as session:
        sandbox = StripeSandbox(session, base_url=f"{base}/_sandbox/stripe", webhook_secret=secret)
        for refund_id in made:
            await sandbox.fail_refund(refund_id, "expired_or_canceled_card")
        held = [e for e in sandbox.events if '"refund.failed"' in e.payload]
    assert len(held) == 2
    async with httpx.AsyncClient(base_url=base) as http:
        for event in held:
            answer = await http.post(
                "/api/payments/webhooks/stripe",
                content=event.payload,
                headers={"Stripe-Signature": event.signature, "Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text

    async with sessions() as session:
        refunded = await published(session, order.id, EventType.PAYMENT_REFUNDED)
        bounced = await published(session, order.id, EventType.PAYMENT_REFUND_FAILED)
        payment = await payments.PaymentRepository(session).for_order(order.id)
    assert payment is not None
    assert (payment.status, payment.amount_refunded) == ("captured", 0)
    assert [(e.data["refundId"], e.data["amount"], e.data["refundAmount"]) for e in bounced] == [
        (made[0], 1000, 1000),
        (made[1], 1500, 1500),
    ]
    assert [e.data["refundedTotal"] for e in bounced] == [1500, 0]

    # The lifetime value: the order counted, taken out by each refund, given back by
    # each bounce, once each.
    created = await publish_committed(
        sessions, EventType.ORDER_CREATED, order.id, order_created(order)
    )
    for event_id in (created, *(e.id for e in refunded), *(e.id for e in bounced)):
        assert await handle_once(sessions, LIFETIME_VALUE, event_id) is True
    async with sessions() as session:
        entries = await session.exec(
            select(LifetimeValueEntry).where(LifetimeValueEntry.order_id == order.id)
        )
        kinds = sorted((e.kind, e.amount) for e in entries.all())
    assert kinds == sorted(
        [
            (LedgerKind.ORDER, 5000),
            (LedgerKind.REFUND, -1000),
            (LedgerKind.REFUND, -1500),
            (LedgerKind.REFUND_FAILED, 1000),
            (LedgerKind.REFUND_FAILED, 1500),
        ]
    )
    assert (await customer(sessions, order.user_id)).lifetime_value == 5000

    # The analytics' refunds: the same four events in an hour of their own count two
    # refunds and two bounces, nothing refunded in the end.
    async with transaction(sessions) as session:
        session.add_all(
            OutboxEvent(
                type=e.type,
                aggregate_type=e.aggregate_type,
                aggregate_id=e.aggregate_id,
                data=e.data,
                created_at=HOUR,
            )
            for e in (*refunded, *bounced)
        )
    await RollupService(sessions).recompute([], [HOUR])
    async with sessions() as session:
        rolled = await session.exec(
            select(AnalyticsRefundHour).where(AnalyticsRefundHour.hour == HOUR)
        )
        assert [(r.currency, r.refunds, r.amount) for r in rolled.all()] == [("USD", 0, 0)]
