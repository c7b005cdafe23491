"""A return's refund whose answer was lost and that bounced (``refund.failed``: the card's
bank sent it back) before its retry, on the live stack (the Stripe sandbox over HTTP):
the retry is answered with the refund as Stripe made it (``succeeded``, a replay under
the key ``return:{id}``), but the refund failed. Whether its ``refund.failed`` was
recorded before the retry or comes after it, the return stays ``received`` with the
failure as its ``refundError`` (for staff to settle), the failure is recorded and told
once, and the payment's refunded amount is what Stripe's refunds add up to: nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.events import EventType
from core.settings import SANDBOX_WEBHOOK_SECRET
from integrations.payments.gateway import PaymentUnavailable, RefundResult
from integrations.payments.stripe import StripeGateway
from integrations.sandbox.stripe import StripeSandbox
from integrations.sandbox.stripe_objects import Event
from models.returns import ReturnStatus
from services import payments
from services.returns import ReturnRepository, ReturnSteps
from tests.fulfillment_rows import published
from tests.live import LiveStack
from tests.orders.helpers import eventually, intents_for, provider_events, refunded
from tests.orders.test_refund_failures import fail_refund
from tests.returns.delivered import two_mugs_of_three_approved
from workflows.types.returns import ReceivedLine

# Two of three 10.00 mugs back undamaged: 20.00 + Massachusetts tax 1.25 (see
# two_mugs_of_three_approved).
OWED = 2125


class _RefundAnswerLost(StripeGateway):
    """The Stripe sandbox over HTTP, but a refund's answer is lost after the sandbox made
    it; remembers the refund made (as the sandbox's list shows it)."""

    made: RefundResult | None = None

    async def refund(self, intent_id: str, **call: Any) -> RefundResult:
        type(self).made = await super().refund(intent_id, **call)
        raise PaymentUnavailable("the refund's answer was lost")


async def _lost_then_bounced(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> tuple[dict[str, Any], str, str, str]:
    """Received (21.25 owed), its refund made at Stripe with the answer lost: (order, return,
    intent, refund)."""
    _shopper, order, request, line = await two_mugs_of_three_approved(
        http, staff, engine, live.settings
    )
    sessions = create_session_factory(engine)
    back = [ReceivedLine(return_line_id=line.id, received_quantity=2, damaged_quantity=0)]
    steps = ReturnSteps(sessions, StripeGateway.from_settings(live.settings))
    assert await steps.receive(request.id, back, staff_id=None) == OWED
    lost = ReturnSteps(sessions, _RefundAnswerLost.from_settings(live.settings))
    with pytest.raises(PaymentUnavailable):
        await lost.refund(request.id)
    made = _RefundAnswerLost.made
    assert made is not None
    assert made.amount == OWED
    [intent] = await intents_for(http, order["id"])
    return order, request.id, intent["id"], made.refund_id


async def _retried_and_failed(
    engine: AsyncEngine, live: LiveStack, return_id: str, refund_id: str
) -> None:
    """The retry: Stripe replays the refund as made, the step knows it failed."""
    steps = ReturnSteps(create_session_factory(engine), StripeGateway.from_settings(live.settings))
    with pytest.raises(payments.RefundFailed) as failed:
        await steps.refund(return_id)
    assert failed.value.code == "payment_not_refundable"  # the workflow waits for staff
    assert refund_id in failed.value.detail


async def _failed_once(
    http: httpx.AsyncClient,
    engine: AsyncEngine,
    order: dict[str, Any],
    return_id: str,
    intent_id: str,
    refund_id: str,
) -> None:
    async with create_session_factory(engine)() as session:
        row = await ReturnRepository(session).require(return_id)
        assert (row.status, row.refund_id) == (ReturnStatus.RECEIVED, refund_id)
        assert row.refund_error is not None
        assert refund_id in row.refund_error
        assert "expired_or_canceled_card" in row.refund_error
        assert await published(session, order["id"], EventType.RETURN_REFUNDED) == []
        assert await published(session, order["id"], EventType.PAYMENT_REFUNDED) == []
        [told] = await published(session, order["id"], EventType.PAYMENT_REFUND_FAILED)
    assert told.data["refundId"] == refund_id
    # Nothing comes off the refunded amount (it never counted the refund), but the
    # customer and staff are told of the refund's own 21.25, not of 0.00.
    assert (told.data["amount"], told.data["refundAmount"]) == (0, OWED)
    [failure] = await provider_events(engine, order["id"], "refund_failed")
    assert (failure["refundId"], failure["reversed"]) == (refund_id, 0)
    [made] = await provider_events(engine, order["id"], "refunded")
    assert (made["refundId"], made["announced"]) == (refund_id, 0)
    assert await refunded(http, intent_id) == 0
    async with create_session_factory(engine)() as session:
        payment = await payments.PaymentRepository(session).for_order(order["id"])
    assert payment is not None
    assert (payment.status, payment.amount_refunded) == ("captured", 0)


async def _settled(
    http: httpx.AsyncClient, staff: dict[str, str], return_id: str, intent_id: str, failed: str
) -> None:
    """Staff settle it: a new refund at Stripe (its key names the failed one)."""
    body = {"amount": OWED, "note": "the card was replaced; refunded again"}
    settled = await http.post(f"/api/admin/returns/{return_id}/settle", headers=staff, json=body)
    assert settled.status_code == 200, settled.text
    assert settled.json()["status"] == "closed"
    assert settled.json()["refundId"] not in (None, failed)
    assert await refunded(http, intent_id) == OWED


async def test_a_refund_bounced_before_its_retry_after_a_lost_answer_leaves_the_return_owed(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """Its ``refund.failed`` recorded first (the return not known by the refund yet, its
    answer lost), the retry recorded Stripe's replayed ``succeeded``: the return
    ``refunded``, then ``closed``, ``return.refunded`` told the customer of money they
    never got, and nothing ever reopened it."""
    order, return_id, intent_id, refund_id = await _lost_then_bounced(http, staff, engine, live)
    await fail_refund(http, refund_id)

    async def failure_recorded() -> bool:
        return bool(await provider_events(engine, order["id"], "refund_failed"))

    await eventually(failure_recorded)
    await _retried_and_failed(engine, live, return_id, refund_id)
    await _failed_once(http, engine, order, return_id, intent_id, refund_id)
    await _settled(http, staff, return_id, intent_id, refund_id)


async def test_a_refund_bounced_before_its_retry_and_told_after_it_is_failed_once(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """The refund failed at Stripe before the retry, its ``refund.failed`` delivered after
    it: the retry knows it failed (Stripe's refund as it stands, not the replay), and the
    late webhook finds it recorded. Before, the retry marked the return ``refunded``
    (``return.refunded`` sent) until the webhook reopened it."""
    order, return_id, intent_id, refund_id = await _lost_then_bounced(http, staff, engine, live)
    # Failed at the sandbox, its webhook held back (delivered below, late).
    secret = live.settings.resolved_stripe_webhook_secret or SANDBOX_WEBHOOK_SECRET
    async with transaction(create_session_factory(engine)) as session:
        sandbox = StripeSandbox(session, base_url=live.base_url, webhook_secret=secret)
        await sandbox.fail_refund(refund_id, "expired_or_canceled_card")
        held: list[Event] = list(sandbox.events)
    assert len(held) == 1

    await _retried_and_failed(engine, live, return_id, refund_id)
    answer = await http.post(
        "/api/payments/webhooks/stripe",
        content=held[0].payload,
        headers={"Stripe-Signature": held[0].signature, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    await _failed_once(http, engine, order, return_id, intent_id, refund_id)
    await _settled(http, staff, return_id, intent_id, refund_id)
