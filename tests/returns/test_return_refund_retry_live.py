"""A return's refund once other refunds took money after its receipt, on the live stack
(the Stripe sandbox over HTTP): the refund always asks Stripe the amount fixed at receipt
(key ``return:{id}``), so a retry after a lost answer is replayed; never made and no
longer covered, it is refused for good (``payment_not_refundable``, non-retryable), the
refusal shown on the return, and staff settle it by hand (``POST .../settle``)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError

from activities.returns import ReturnActivities
from core.db import create_session_factory, transaction
from integrations.payments.stripe import StripeGateway
from integrations.shipping.factory import build_shipping_provider
from models.outbox import OutboxEvent
from models.returns import ReturnReason, ReturnStatus
from services import payments
from services.order_repository import OrderRepository
from services.returns import ReturnLabels, ReturnRepository, ReturnSteps, refund_key
from tests.live import LiveStack
from tests.orders.helpers import intents_for, place, product, refunded, shopper_with_cart, wait_for
from tests.returns.delivered import Parcel, approved_return, days_ago, ship
from workflows.types.returns import ReceivedLine, ReturnRef

# 30.00 of goods, shipping 5.99, Massachusetts tax 6.25% (1.88): 37.87 captured. Two of
# three 10.00 mugs back undamaged (no longer needed): 20.00 + tax 1.25 = 21.25 owed.
OWED = 2125
CAPTURED = 3787


async def _received(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> tuple[str, str, str]:
    """An order paid and delivered, two mugs of it received back: (order, return, intent)."""
    mug = await product(http, staff, price=1000, stock=10)
    shopper = await shopper_with_cart(http, [(mug, 3)])
    order = await wait_for(http, shopper.headers, (await place(http, shopper))["id"])
    assert order["status"] == "fulfillment_queued", order
    assert order["totals"]["total"] == CAPTURED, order["totals"]
    await ship(engine, order["id"], [Parcel({0: 3}, days_ago(2))])
    request, [line] = await approved_return(
        engine, live.settings, order, {mug["id"]: 2}, ReturnReason.NO_LONGER_NEEDED
    )
    steps = ReturnSteps(create_session_factory(engine), StripeGateway.from_settings(live.settings))
    back = [ReceivedLine(return_line_id=line.id, received_quantity=2, damaged_quantity=0)]
    assert await steps.receive(request.id, back, staff_id=None) == OWED
    [intent] = await intents_for(http, order["id"])
    return order["id"], request.id, intent["id"]


async def _staff_refund(engine: AsyncEngine, live: LiveStack, order_id: str, amount: int) -> None:
    async with transaction(create_session_factory(engine)) as session:
        order = await OrderRepository(session).require(order_id)
        await payments.refund(
            session,
            StripeGateway.from_settings(live.settings),
            order,
            amount=amount,
            reason="goodwill",
            staff_id=None,
            request_key=f"goodwill-{order_id}",
        )


async def test_a_return_refund_retried_after_a_lost_answer_is_replayed_whatever_came_between(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """The first attempt refunded 21.25 at Stripe, its answer lost; a staff refund of
    15.00 then recorded Stripe's total (36.25), leaving 1.62. The retry asked Stripe for
    1.62 under the same key (capped at what was left): Stripe refused the changed
    parameters (``idempotency_error``) on every attempt, and the return never ended."""
    order_id, return_id, intent_id = await _received(http, staff, engine, live)
    gateway = StripeGateway.from_settings(live.settings)
    first = await gateway.refund(
        intent_id, amount=OWED, currency="USD", idempotency_key=refund_key(return_id)
    )
    await _staff_refund(engine, live, order_id, 1500)

    steps = ReturnSteps(create_session_factory(engine), gateway)
    assert await steps.refund(return_id) == first.refund_id  # Stripe's replay
    assert await refunded(http, intent_id) == OWED + 1500
    async with create_session_factory(engine)() as session:
        row = await ReturnRepository(session).require(return_id)
        assert (row.status, row.refund_amount, row.refund_id) == (
            ReturnStatus.REFUNDED,
            OWED,
            first.refund_id,
        )


async def test_a_return_refund_no_longer_covered_is_refused_for_good(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """Received (21.25 owed), then a staff refund of 30.00 left 7.87: the return's refund
    was cut to 7.87 and the return marked refunded, as if 21.25 had been paid back. Now
    Stripe refuses 21.25, the activity fails non-retryable (``payment_not_refundable``,
    what is left in its details) and the return stays ``received`` for staff."""
    order_id, return_id, intent_id = await _received(http, staff, engine, live)
    await _staff_refund(engine, live, order_id, 3000)

    sessions = create_session_factory(engine)
    activities = ReturnActivities(
        ReturnLabels(sessions, live.settings, build_shipping_provider(live.settings)),
        ReturnSteps(sessions, StripeGateway.from_settings(live.settings)),
    )
    for _attempt in range(2):  # a retry is refused the same (Stripe keeps the answer)
        with pytest.raises(ApplicationError) as refused:
            await activities.refund(ReturnRef(return_id=return_id))
        assert refused.value.type == "payment_not_refundable"
        assert refused.value.non_retryable
        assert refused.value.details == ({"refundable": CAPTURED - 3000},)
    assert await refunded(http, intent_id) == 3000
    async with sessions() as session:
        row = await ReturnRepository(session).require(return_id)
        assert (row.status, row.refund_amount, row.refund_id) == (
            ReturnStatus.RECEIVED,
            OWED,
            None,
        )
    # Staff see why, on the return itself.
    shown = await http.get(f"/api/admin/returns/{return_id}", headers=staff)
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "received"
    assert "refund" in shown.json()["refundError"]


async def _refused(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> tuple[str, str, str]:
    """Received (21.25 owed), a staff refund of 30.00 after it, the return's refund
    refused for good: 7.87 is left at Stripe. (order, return, intent)"""
    order_id, return_id, intent_id = await _received(http, staff, engine, live)
    await _staff_refund(engine, live, order_id, 3000)
    steps = ReturnSteps(create_session_factory(engine), StripeGateway.from_settings(live.settings))
    with pytest.raises(payments.NotRefundable):
        await steps.refund(return_id)
    return order_id, return_id, intent_id


async def test_staff_settle_a_refused_return_refund_once(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    order_id, return_id, intent_id = await _refused(http, staff, engine, live)
    url = f"/api/admin/returns/{return_id}/settle"
    note = "30.00 went back by phone; the 7.87 left now"

    too_much = await http.post(url, headers=staff, json={"amount": OWED + 1, "note": note})
    assert too_much.status_code == 422, too_much.text
    assert too_much.json()["code"] == "settlement_exceeds_refund"
    assert too_much.json()["owed"] == OWED
    left = CAPTURED - 3000
    not_left = await http.post(url, headers=staff, json={"amount": left + 1, "note": note})
    assert not_left.status_code == 409, not_left.text
    assert not_left.json()["code"] == "payment_not_refundable"
    assert await refunded(http, intent_id) == 3000  # nothing made by the refusals

    settled = await http.post(url, headers=staff, json={"amount": left, "note": note})
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert (body["status"], body["refundAmount"], body["settlementNote"]) == (
        "closed",
        left,
        note,
    )
    assert body["refundId"]
    assert body["refundError"]  # why it needed settling stays on the record
    assert await refunded(http, intent_id) == CAPTURED

    # A retry after a lost answer changes nothing; another amount is refused.
    again = await http.post(url, headers=staff, json={"amount": left, "note": note})
    assert again.status_code == 200, again.text
    assert again.json()["refundId"] == body["refundId"]
    other = await http.post(url, headers=staff, json={"amount": 0, "note": note})
    assert other.status_code == 409, other.text
    assert other.json()["code"] == "return_not_settleable"
    assert await refunded(http, intent_id) == CAPTURED

    async with create_session_factory(engine)() as session:
        events = (
            await session.exec(
                select(OutboxEvent.type, OutboxEvent.data)
                .where(OutboxEvent.aggregate_id == order_id)
                .where(col(OutboxEvent.type) == "return.refunded")
            )
        ).all()
    [(_type, data)] = events
    assert (data["amount"], data["owed"], data["settled"], data["note"]) == (
        left,
        OWED,
        True,
        note,
    )


async def test_only_a_refused_return_refund_is_settled_and_zero_closes_it(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    _order_id, received_id, intent_id = await _received(http, staff, engine, live)
    body = {"amount": 0, "note": "covered by a goodwill refund"}
    # Its refund was never refused: the workflow finishes it, not staff.
    early = await http.post(f"/api/admin/returns/{received_id}/settle", headers=staff, json=body)
    assert early.status_code == 409, early.text
    assert early.json()["code"] == "return_not_settleable"
    missing = await http.post("/api/admin/returns/ret_missing/settle", headers=staff, json=body)
    assert missing.status_code == 404, missing.text
    bad = await http.post(
        f"/api/admin/returns/{received_id}/settle", headers=staff, json={"amount": -1}
    )
    assert bad.status_code == 422, bad.text

    _order_id, return_id, intent_id = await _refused(http, staff, engine, live)
    closed = await http.post(f"/api/admin/returns/{return_id}/settle", headers=staff, json=body)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["refundAmount"]) == ("closed", 0)
    assert closed.json()["refundId"] is None
    assert await refunded(http, intent_id) == 3000
