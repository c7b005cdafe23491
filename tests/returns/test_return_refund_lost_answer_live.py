"""A return's refund whose answer was lost, on the live stack (the Stripe sandbox over
HTTP, the relay delivering to every subscriber): Stripe's ``charge.refunded`` webhook
for it recorded before or after the retry, or its money found by another refund first.
Whatever the order, the money goes back once, ``payment.refunded`` says it once with the
return's id, and the customer gets one email about it: the return's."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory, transaction
from core.settings import SANDBOX_WEBHOOK_SECRET
from integrations.payments.gateway import PaymentUnavailable, RefundResult
from integrations.payments.stripe import StripeGateway
from integrations.sandbox.stripe_objects import sign
from models.orders import OrderEvent
from models.outbox import OutboxEvent
from models.payments import Payment, PaymentEvent
from services import payments
from services.order_repository import OrderRepository
from services.returns import ReturnSteps
from tests.live import LiveStack
from tests.orders.helpers import intents_for, refunded, stripe_forgets_keys
from tests.returns.delivered import two_mugs_of_three_approved
from workflows.types.returns import ReceivedLine

# 30.00 of goods, shipping 5.99, Massachusetts tax 6.25% (1.88): 37.87 captured. Two of
# three 10.00 mugs back undamaged (no longer needed): 20.00 + tax 1.25 = 21.25 owed.
OWED = 2125


class _RefundAnswerLost(StripeGateway):
    """The Stripe sandbox over HTTP, but a refund's answer is lost after the sandbox made
    it: the process died between the provider call and its commit."""

    async def refund(self, intent_id: str, **call: Any) -> RefundResult:
        await super().refund(intent_id, **call)
        raise PaymentUnavailable("the refund's answer was lost")


class _Case:
    def __init__(
        self, engine: AsyncEngine, live: LiveStack, order: dict[str, Any], email: str
    ) -> None:
        self.engine, self.live, self.order, self.email = engine, live, order, email
        self.sessions = create_session_factory(engine)
        self.gateway = StripeGateway.from_settings(live.settings)
        self.return_id = ""
        self.intent_id = ""

    def steps(self, gateway: StripeGateway | None = None) -> ReturnSteps:
        return ReturnSteps(self.sessions, gateway or self.gateway)

    async def payment_events(self, type: str) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(PaymentEvent.data)
                .join(Payment, col(Payment.id) == col(PaymentEvent.payment_id))
                .where(Payment.order_id == self.order["id"], PaymentEvent.type == type)
                .order_by(col(PaymentEvent.created_at))
            )
            return [dict(r) for r in rows.all()]

    async def outbox(self, type: str) -> list[OutboxEvent]:
        """The order's events of ``type`` once the relay delivered every one of them."""
        for _ in range(300):
            async with self.sessions() as session:
                rows = list(
                    (
                        await session.exec(
                            select(OutboxEvent)
                            .where(OutboxEvent.aggregate_id == self.order["id"])
                            .where(OutboxEvent.type == type)
                            .order_by(col(OutboxEvent.seq))
                        )
                    ).all()
                )
            if all(r.delivered_at is not None for r in rows):
                return rows
            await asyncio.sleep(0.1)
        raise AssertionError(f"{type} of {self.order['id']} not delivered")

    async def timeline(self) -> list[str]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(OrderEvent.message)
                .where(OrderEvent.order_id == self.order["id"])
                .order_by(col(OrderEvent.created_at))
            )
            return [m for m in rows.all() if "refund" in m]

    async def refund_emails(self, http: httpx.AsyncClient) -> list[str]:
        """The subjects of the customer's emails about a refund, oldest first."""
        messages = (await http.get("/_sandbox/mail/messages", params={"to": self.email})).json()
        return [m["subject"] for m in messages[::-1] if m["subject"].startswith("Refund")]

    async def charge_refunded_webhook(self, http: httpx.AsyncClient) -> None:
        """Stripe's ``charge.refunded`` for the intent's charge, delivered now (as a late
        retry of Stripe's delivery would be), signed with the endpoint's secret."""
        intent = (
            await http.get(
                f"/_sandbox/stripe/v1/payment_intents/{self.intent_id}",
                headers={"Authorization": "Bearer sk_test_shopweave_sandbox"},
            )
        ).json()
        # As Stripe sends it: the Charge (the intent's metadata copied to it), not the intent.
        back = await refunded(http, self.intent_id)
        charge = {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount_received"],
            "amount_refunded": back,
            "captured": True,
            "currency": intent["currency"],
            "metadata": intent["metadata"],
            "paid": True,
            "payment_intent": intent["id"],
            "refunded": back >= intent["amount_received"],
            "status": "succeeded",
        }
        payload = json.dumps(
            {
                "id": f"evt_late_{self.return_id}",
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "type": "charge.refunded",
                "livemode": False,
                "data": {"object": charge},
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
            }
        )
        answer = await http.post(
            "/api/payments/webhooks/stripe",
            content=payload,
            headers={
                "Stripe-Signature": sign(payload, SANDBOX_WEBHOOK_SECRET),
                "Content-Type": "application/json",
            },
        )
        assert answer.status_code == 200, answer.text

    async def webhooks_recorded(self, count: int) -> None:
        for _ in range(300):
            if len(await self.payment_events("charge.refunded")) >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("Stripe's charge.refunded was not recorded")


async def _received(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> _Case:
    """An order paid and delivered, two mugs of it received back (21.25 owed)."""
    shopper, order, request, line = await two_mugs_of_three_approved(
        http, staff, engine, live.settings
    )
    case = _Case(engine, live, order, shopper.user["email"])
    back = [ReceivedLine(return_line_id=line.id, received_quantity=2, damaged_quantity=0)]
    assert await case.steps().receive(request.id, back, staff_id=None) == OWED
    [intent] = await intents_for(http, order["id"])
    case.return_id, case.intent_id = request.id, intent["id"]
    return case


async def _refund_answer_lost(case: _Case) -> None:
    with pytest.raises(PaymentUnavailable):
        await case.steps(_RefundAnswerLost.from_settings(case.live.settings)).refund(case.return_id)


async def _one_return_refund(http: httpx.AsyncClient, case: _Case, *, other: int = 0) -> None:
    """The money went back once; ``payment.refunded`` said so once, with the return's id
    (besides a staff refund of ``other``); one email about it, the return's."""
    assert await refunded(http, case.intent_id) == OWED + other
    announced = [e.data for e in await case.outbox("payment.refunded")]
    assert sum(e["amount"] for e in announced) == OWED + other
    assert [(e["amount"], e.get("returnId")) for e in announced if e.get("returnId")] == [
        (OWED, case.return_id)
    ]
    [done] = await case.outbox("return.refunded")
    assert done.data["amount"] == OWED
    refunds = [e for e in await case.payment_events("refunded") if e.get("returnId")]
    assert [e["amount"] for e in refunds] == [OWED]
    customer = await case.refund_emails(http)
    assert [s for s in customer if case.return_id in s] == [
        f"Refund of 21.25 USD for your return {case.return_id}"
    ]
    assert [s for s in customer if "21.25" in s and case.return_id not in s] == []
    assert len(customer) == 1 + (other > 0)
    timeline = await case.timeline()
    assert sum("refunded 21.25 USD" in m for m in timeline) == 1, timeline
    assert sum(m.startswith("return refunded") for m in timeline) == 1, timeline


async def test_stripe_announces_the_lost_refund_before_its_retry(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    case = await _received(http, staff, engine, live)
    await _refund_answer_lost(case)
    await case.webhooks_recorded(1)  # Stripe's own delivery, after the sandbox's commit
    await case.charge_refunded_webhook(http)  # and another, for good measure
    await case.webhooks_recorded(2)
    assert await case.outbox("payment.refunded") == []  # a webhook announces nothing

    await case.steps().refund(case.return_id)
    await _one_return_refund(http, case)


async def test_stripe_announces_the_lost_refund_after_its_retry(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    case = await _received(http, staff, engine, live)
    await _refund_answer_lost(case)
    await case.steps().refund(case.return_id)
    await case.charge_refunded_webhook(http)
    await case.webhooks_recorded(2)
    await _one_return_refund(http, case)


async def test_another_refund_finds_the_lost_one_before_its_retry(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """A staff refund of 15.00 made between the lost answer and the retry reads Stripe's
    total, the return's 21.25 in it, and announces that money too. Announced without the
    return's id, the customer had a plain refund email of 21.25 and then the return's."""
    case = await _received(http, staff, engine, live)
    await _refund_answer_lost(case)
    async with transaction(case.sessions) as session:
        order = await OrderRepository(session).require(case.order["id"])
        await payments.refund(
            session,
            case.gateway,
            order,
            amount=1500,
            reason="goodwill",
            staff_id=None,
            request_key=f"goodwill-{case.order['id']}",
        )
    await case.steps().refund(case.return_id)
    await _one_return_refund(http, case, other=1500)


async def test_a_lost_refund_retried_after_stripe_forgot_its_key_is_not_made_again(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """Stripe keeps an idempotency key 24 hours: a return's refund whose answer was lost
    and whose retry comes later (a day's outage of the workers or the database) is
    found among Stripe's refunds by the return's id it carries, not made again. Asked
    anew, Stripe made a second refund (here refused as more than is left: the return
    failed for staff, its money refunded)."""
    case = await _received(http, staff, engine, live)
    await _refund_answer_lost(case)
    assert await stripe_forgets_keys(engine, f"return:{case.return_id}")
    await case.steps().refund(case.return_id)
    await _one_return_refund(http, case)
