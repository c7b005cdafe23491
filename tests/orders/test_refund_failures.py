"""A staff refund that Stripe answered ``succeeded`` and that failed later (the card's bank
sent it back: ``refund.failed``, sent by the sandbox when ``POST /_sandbox/stripe/refunds/
{id}/fail`` fails it, as Stripe's test card 4000000000005126 does on its own)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.settings import SANDBOX_WEBHOOK_SECRET
from integrations.payments.gateway import PaymentUnavailable
from integrations.payments.stripe import StripeGateway
from integrations.sandbox.stripe import StripeSandbox
from integrations.sandbox.stripe_objects import Event as SandboxEvent
from services import payments
from services.order_repository import OrderRepository
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.orders.helpers import (
    SANDBOX_KEY,
    eventually,
    intents_for,
    paid_order,
    provider_events,
    refunded,
)
from tests.orders.test_staff_refunds import _RefundAnswerLost


async def fail_refund(http: httpx.AsyncClient, refund_id: str) -> dict[str, Any]:
    """The sandbox fails the refund and sends ``refund.failed`` to our endpoint."""
    failed = await http.post(f"/_sandbox/stripe/refunds/{refund_id}/fail")
    assert failed.status_code == 200, failed.text
    body: dict[str, Any] = failed.json()
    assert (body["status"], body["failure_reason"]) == ("failed", "expired_or_canceled_card")
    return body


async def bounce_unannounced(
    http: httpx.AsyncClient, live: LiveStack, sessions: SessionFactory, order_id: str, reason: str
) -> tuple[dict[str, Any], SandboxEvent]:
    """The order's one refund at Stripe fails (its card's bank sent it back); its
    ``refund.failed`` is held, not sent (returned, to send late)."""
    [intent] = await intents_for(http, order_id)
    listed = await http.get(
        "/_sandbox/stripe/v1/refunds", headers=SANDBOX_KEY, params={"payment_intent": intent["id"]}
    )
    [made] = listed.json()["data"]
    secret = live.settings.resolved_stripe_webhook_secret or SANDBOX_WEBHOOK_SECRET
    async with transaction(sessions) as session:
        sandbox = StripeSandbox(session, base_url=live.base_url, webhook_secret=secret)
        await sandbox.fail_refund(made["id"], reason)
        [held] = sandbox.events
    return made, held


async def test_a_staff_refund_that_failed_at_stripe_is_refundable_again(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """10.00 refunded, then failed: the payment is ``captured`` with nothing refunded, the
    timeline says which refund failed and why, and staff can refund the whole total. Read
    never, the failure left the payment ``partially_refunded`` by 10.00 the customer did
    not get, and a refund of the total was refused (409 ``payment_not_refundable``)."""
    shopper, placed = await paid_order(http, staff)
    order_url, total = f"/api/orders/{placed['id']}", placed["totals"]["total"]
    refunds_url = f"/api/admin/orders/{placed['id']}/refunds"
    first = await http.post(
        refunds_url,
        headers=staff | {"Idempotency-Key": f"dented-{placed['id']}"},
        json={"amount": 1000, "reason": "dented"},
    )
    assert first.status_code == 200, first.text
    [made] = await provider_events(engine, placed["id"], "refunded")
    await fail_refund(http, made["refundId"])

    async def failure_recorded() -> bool:
        return bool(await provider_events(engine, placed["id"], "refund_failed"))

    await eventually(failure_recorded)
    [failure] = await provider_events(engine, placed["id"], "refund_failed")
    assert (failure["refundId"], failure["reversed"]) == (made["refundId"], 1000)
    # Told, in the same transaction: once, with what a subscriber needs (no returnId: a
    # staff refund), the balance as of the failure.
    async with create_session_factory(engine)() as session:
        [told] = await published(session, placed["id"], EventType.PAYMENT_REFUND_FAILED)
    assert told.data == {
        "orderId": placed["id"],
        "refundId": made["refundId"],
        "amount": 1000,
        "refundAmount": 1000,
        "currency": "USD",
        "reason": "expired_or_canceled_card",
        "captured": total,
        "refundedTotal": 0,
        "remaining": total,
    }
    order = (await http.get(order_url, headers=shopper.headers)).json()
    assert (order["payment"]["status"], order["payment"]["amountRefunded"]) == ("captured", 0)
    # Staff's timeline says which refund failed (the customer's leaves it out).
    assert [e for e in order["timeline"] if made["refundId"] in e["message"]] == []
    ledger = (await http.get(order_url, headers=staff)).json()
    assert [e for e in ledger["timeline"] if made["refundId"] in e["message"]] != []

    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == 0
    again = await http.post(
        refunds_url,
        headers=staff | {"Idempotency-Key": f"whole-{placed['id']}"},
        json={"reason": "the first refund bounced"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["payment"]["amountRefunded"] == total
    assert again.json()["payment"]["status"] == "refunded"
    assert await refunded(http, intent["id"]) == total
    # The sandbox lists the failed refund too (as Stripe does), not counted as money back.
    listed = await http.get(
        "/_sandbox/stripe/v1/refunds", headers=SANDBOX_KEY, params={"payment_intent": intent["id"]}
    )
    assert sorted(r["status"] for r in listed.json()["data"]) == ["failed", "succeeded"]
    assert len(await provider_events(engine, placed["id"], "refund_failed")) == 1
    async with create_session_factory(engine)() as session:
        assert len(await published(session, placed["id"], EventType.PAYMENT_REFUND_FAILED)) == 1


async def test_a_staff_refund_that_bounced_before_its_retry_is_failed_once_and_spends_its_key(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """10.00 refunded at Stripe, its answer lost; the card's bank sent it back, the
    ``refund.failed`` delivered late. The retry (the same counted key) is answered with
    the refund as made (``succeeded``): it is known as failed (Stripe's refund as it
    stands), recorded once with the late webhook, nothing refunded or announced; and
    the next staff refund is a new one, not that refund again."""
    _shopper, placed = await paid_order(http, staff)
    sessions = create_session_factory(engine)

    async def refund_of(amount: int, via: StripeGateway) -> payments.RefundOutcome:
        async with transaction(sessions) as session:
            row = await OrderRepository(session).require(placed["id"])
            return await payments.refund(
                session, via, row, amount=amount, reason="dented", staff_id=None
            )

    with pytest.raises(PaymentUnavailable):
        await refund_of(1000, _RefundAnswerLost.from_settings(live.settings))
    made, held = await bounce_unannounced(http, live, sessions, placed["id"], "lost_or_stolen_card")

    gateway = StripeGateway.from_settings(live.settings)
    retried = await refund_of(1000, gateway)
    assert (retried.refund_id, retried.failure) == (made["id"], "lost_or_stolen_card")
    late = await http.post(
        "/api/payments/webhooks/stripe",
        content=held.payload,
        headers={"Stripe-Signature": held.signature, "Content-Type": "application/json"},
    )
    assert late.status_code == 200, late.text
    [failure] = await provider_events(engine, placed["id"], "refund_failed")
    assert (failure["refundId"], failure["reversed"]) == (made["id"], 0)
    async with sessions() as session:
        [told] = await published(session, placed["id"], EventType.PAYMENT_REFUND_FAILED)
        assert await published(session, placed["id"], EventType.PAYMENT_REFUNDED) == []
        payment = await payments.PaymentRepository(session).for_order(placed["id"])
    assert payment is not None
    assert (payment.status, payment.amount_refunded) == ("captured", 0)
    # Never counted, so nothing comes off the refunded amount; but 10.00 did not reach
    # the customer, and that is what they and staff are told (they were told 0.00).
    assert (told.data["amount"], told.data["refundAmount"]) == (0, 1000)

    again = await refund_of(1000, gateway)
    assert again.refund_id != made["id"]
    assert again.failure is None
    [intent] = await intents_for(http, placed["id"])
    assert await refunded(http, intent["id"]) == 1000
