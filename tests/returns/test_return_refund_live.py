"""A return's goods coming back, on the live stack: an order placed and paid through the
API (the Stripe sandbox over HTTP), delivered, returned with one unit damaged. The
refund is exactly one at the provider, of the amount the rule gives, even when the
gateway fails half its calls and an earlier attempt's answer was lost; only the
undamaged unit goes back to stock (ledger reason ``return``), once."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory
from integrations.payments.gateway import PaymentUnavailable
from integrations.payments.stripe import StripeGateway
from models.inventory import MovementKind, StockMovement
from models.outbox import OutboxEvent
from models.returns import ReturnReason, ReturnStatus
from services.returns import ReturnRepository, ReturnSteps, refund_key
from tests.live import LiveStack
from tests.orders.helpers import (
    intents_for,
    place,
    product,
    refunded,
    shopper_with_cart,
    stock,
    wait_for,
)
from tests.returns.delivered import Parcel, approved_return, days_ago, ship
from workflows.types.returns import ReceivedLine


async def test_damaged_return_refunds_once_under_faults_and_restocks_the_good_unit(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    mug = await product(http, staff, price=1500, stock=10)
    tea = await product(http, staff, price=1000, stock=10)
    shopper = await shopper_with_cart(http, [(mug, 2), (tea, 1)])
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    # 40.00 of goods: below the free-shipping threshold (5.99), Massachusetts tax 6.25%.
    totals = order["totals"]
    assert (totals["shipping"], totals["tax"], totals["total"]) == (599, 250, 4849)
    await ship(engine, order["id"], [Parcel({0: 2, 1: 1}, days_ago(2))])

    request, [line] = await approved_return(
        engine, live.settings, order, {mug["id"]: 2}, ReturnReason.DAMAGED
    )
    sessions = create_session_factory(engine)
    gateway = StripeGateway.from_settings(live.settings)
    steps = ReturnSteps(sessions, gateway)

    # One mug back fine, one broken: both refunded. Goods 30.00 of 40.00 (no coupon),
    # tax 2.50 x 30/40 = 1.875 -> 1.87, shipping 5.99 (the shop's fault): 37.86.
    received = [ReceivedLine(return_line_id=line.id, received_quantity=1, damaged_quantity=1)]
    assert await steps.receive(request.id, received, staff_id=None) == 3786
    assert await steps.receive(request.id, received, staff_id=None) == 3786  # a retry

    # A first attempt reached Stripe, but its answer (and our commit) was lost...
    [intent] = await intents_for(http, order["id"])
    await gateway.refund(
        intent["id"], amount=3786, currency="USD", idempotency_key=refund_key(request.id)
    )
    # ... and the retries meet a gateway failing half its calls.
    await http.put("/_sandbox/stripe/faults", json={"failureRate": 0.5})
    refund_id = None
    for _ in range(40):
        try:
            refund_id = await steps.refund(request.id)
            break
        except PaymentUnavailable:
            continue  # Temporal retries the activity
    await http.delete("/_sandbox/stripe/faults")
    assert refund_id is not None
    assert await steps.refund(request.id) == refund_id  # done: nothing more
    assert await steps.close(request.id) == ReturnStatus.CLOSED

    assert await refunded(http, intent["id"]) == 3786
    refunds = await http.get(
        "/_sandbox/stripe/v1/refunds",
        headers={"Authorization": "Bearer sk_test_shopweave_sandbox"},
        params={"payment_intent": intent["id"]},
    )
    assert [r["id"] for r in refunds.json()["data"]] == [refund_id]
    after = await http.get(f"/api/orders/{order['id']}", headers=shopper.headers)
    assert after.json()["payment"]["status"] == "partially_refunded"

    # Stock: 10 - 2 sold + 1 undamaged back; the ledger has that one return movement.
    assert (await stock(http, staff, mug["id"]))["onHand"] == 9
    async with sessions() as session:
        movements = (
            await session.exec(
                select(StockMovement).where(
                    StockMovement.product_id == mug["id"],
                    StockMovement.kind == MovementKind.RETURN,
                )
            )
        ).all()
        assert [(m.on_hand_delta, m.reference) for m in movements] == [(1, line.id)]
        events = (
            await session.exec(
                select(OutboxEvent.type, OutboxEvent.data)
                .where(OutboxEvent.aggregate_id == order["id"])
                .order_by(col(OutboxEvent.seq))
            )
        ).all()
        row = await ReturnRepository(session).require(request.id)
        assert (row.status, row.refund_amount, row.refund_id) == ("closed", 3786, refund_id)
    after_sale = [(t, d.get("returnId")) for t, d in events if t.startswith(("return", "payment"))]
    assert after_sale == [
        ("return.requested", request.id),
        ("return.received", request.id),
        ("payment.refunded", request.id),
        ("return.refunded", request.id),
    ]
    [paid_back] = [d for t, d in events if t == "payment.refunded"]
    assert (paid_back["amount"], paid_back["remaining"]) == (3786, 4849 - 3786)
