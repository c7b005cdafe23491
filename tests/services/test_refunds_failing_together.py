"""Two refunds of one payment that the card's bank sends back close together: both are
out of Stripe's refunded total before the first ``refund.failed`` is recorded. Each
``payment.refund_failed`` gives back its own refund's money, so the analytics and the
customer's lifetime value count each bounce once."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import SessionFactory, create_session_factory, transaction
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
from services.payments import PaymentService
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
    order, service = await _captured(engine, live)
    made = [(await _staff_refund(sessions, service, order, a)).refund_id for a in (1000, 1500)]

    # The card's bank sends both back; their webhooks are held until both have failed.
    refunded, bounced = await _bounced_together(live, base, sessions, order, made)
    assert [(e.data["refundId"], e.data["amount"], e.data["refundAmount"]) for e in bounced] == [
        (made[0], 1000, 1000),
        (made[1], 1500, 1500),
    ]
    assert [e.data["refundedTotal"] for e in bounced] == [1500, 0]

    # The lifetime value: the order counted, taken out by each refund, given back by
    # each bounce, once each.
    assert await _ledger(sessions, order, [*refunded, *bounced]) == sorted(
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


async def test_a_lost_refund_bouncing_with_a_counted_one_takes_none_of_its_money(
    engine: AsyncEngine, stripe_api: tuple[Settings, str]
) -> None:
    """50.00 captured; 10.00 refunded and recorded; 15.00 refunded at Stripe, its answer
    lost (never counted); the card's bank sends both back, the lost one's
    ``refund.failed`` handled first. It gives back nothing (the row never counted it)
    and names its own 15.00 as what did not arrive; the counted one gives back its 10.00.
    Before, the lost one's event gave back the 10.00 and the counted one's 0: the total
    right, each bounce's amount (and the lifetime value's refund_failed entry) wrong."""
    live, base = stripe_api
    sessions = create_session_factory(engine)
    order, service = await _captured(engine, live)
    counted = await _staff_refund(sessions, service, order, 1000)
    async with sessions() as session:
        payment = await payments.PaymentRepository(session).for_order(order.id)
    assert payment is not None
    assert payment.intent_id is not None
    # Made at Stripe, its answer lost before anything was recorded.
    lost = await service.gateway.refund(
        payment.intent_id, amount=1500, currency="USD", idempotency_key=f"{order.id}:refund-lost"
    )

    refunded, bounced = await _bounced_together(  # the lost refund's webhook first
        live, base, sessions, order, [lost.refund_id, counted.refund_id]
    )
    assert [(e.data["refundId"], e.data["amount"], e.data["refundAmount"]) for e in bounced] == [
        (lost.refund_id, 0, 1500),
        (counted.refund_id, 1000, 1000),
    ]

    assert await _ledger(sessions, order, [*refunded, *bounced]) == sorted(
        [
            (LedgerKind.ORDER, 5000),
            (LedgerKind.REFUND, -1000),
            (LedgerKind.REFUND_FAILED, 1000),
        ]
    )
    assert (await customer(sessions, order.user_id)).lifetime_value == 5000


async def _captured(engine: AsyncEngine, live: Settings) -> tuple[Order, PaymentService]:
    """An order of 50.00, its payment authorised and captured (at the Stripe sandbox)."""
    order = await order_of(engine, total=5000)
    service = payment_service(engine, live)
    await service.authorize(order.id)
    await service.capture(order.id)
    return order, service


async def _staff_refund(
    sessions: SessionFactory, service: PaymentService, order: Order, amount: int
) -> payments.RefundOutcome:
    async with transaction(sessions) as session:
        row = await session.get(Order, order.id)
        assert row is not None
        return await payments.refund(
            session, service.gateway, row, amount=amount, reason="dented", staff_id=None
        )


async def _bounced_together(
    live: Settings, base: str, sessions: SessionFactory, order: Order, refund_ids: list[str]
) -> tuple[list[OutboxEvent], list[OutboxEvent]]:
    """The card's bank sends back every refund of ``refund_ids``; their ``refund.failed``
    webhooks, held until all have failed, then reach our endpoint in that order. Returns
    the order's ``payment.refunded`` and ``payment.refund_failed`` events; its payment
    has nothing refunded left."""
    secret = live.resolved_stripe_webhook_secret or SANDBOX_WEBHOOK_SECRET
    async with transaction(sessions) as session:
        sandbox = StripeSandbox(session, base_url=f"{base}/_sandbox/stripe", webhook_secret=secret)
        for refund_id in refund_ids:
            await sandbox.fail_refund(refund_id, "expired_or_canceled_card")
        held = [e for e in sandbox.events if '"refund.failed"' in e.payload]
    assert len(held) == len(refund_ids)
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
    return refunded, bounced


async def _ledger(
    sessions: SessionFactory, order: Order, events: list[OutboxEvent]
) -> list[tuple[str, int]]:
    """The order's lifetime-value entries once its creation and ``events`` are handled
    (each once), sorted."""
    created = await publish_committed(
        sessions, EventType.ORDER_CREATED, order.id, order_created(order)
    )
    for event_id in (created, *(e.id for e in events)):
        assert await handle_once(sessions, LIFETIME_VALUE, event_id) is True
    async with sessions() as session:
        entries = await session.exec(
            select(LifetimeValueEntry).where(LifetimeValueEntry.order_id == order.id)
        )
        return sorted((e.kind, e.amount) for e in entries.all())
