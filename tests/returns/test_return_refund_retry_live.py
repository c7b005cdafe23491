"""A return's refund once other refunds took money after its receipt, on the live stack
(the Stripe sandbox over HTTP): the refund always asks Stripe the amount fixed at receipt
(key ``return:{id}``), so a retry after a lost answer is replayed; never made and no
longer covered, it is refused for good (``payment_not_refundable``, non-retryable)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError

from activities.returns import ReturnActivities
from core.db import create_session_factory, transaction
from integrations.payments.stripe import StripeGateway
from integrations.shipping.factory import build_shipping_provider
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
    first = await gateway.refund(intent_id, amount=OWED, idempotency_key=refund_key(return_id))
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
