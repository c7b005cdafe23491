"""A return from end to end on the live stack, as clients drive it: a delivered order,
the customer's request, staff's approval (a return label from the carrier sandbox),
the receipt with one unit damaged under Stripe faults, exactly one refund of the right
amount, the undamaged unit back in stock, the return closed; and a declined one."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory
from integrations.payments.stripe import StripeGateway
from models.inventory import MAX_STOCK, MovementKind, StockMovement
from models.outbox import OutboxEvent
from models.returns import ReturnStatus
from services.returns import ReturnSteps
from tests.factories import fill_stock
from tests.live import LiveStack
from tests.orders.helpers import (
    Shopper,
    intents_for,
    place,
    product,
    refunded,
    shopper_with_cart,
    stock,
    wait_for,
)
from tests.returns.delivered import Parcel, days_ago, return_until, ship


async def _delivered_order(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    mug = await product(http, staff, price=1500, stock=10)
    tea = await product(http, staff, price=1000, stock=10)
    shopper = await shopper_with_cart(http, [(mug, 2), (tea, 1)])
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    await ship(engine, order["id"], [Parcel({0: 2, 1: 1}, days_ago(2))])
    return mug, order, shopper


async def _two_mugs_back(
    http: httpx.AsyncClient,
    staff: dict[str, str],
    order: dict[str, Any],
    shopper: Shopper,
    mug: dict[str, Any],
) -> tuple[str, str, dict[str, Any]]:
    """The customer returns the two mugs (damaged), staff approve: the return's id, its
    line's, and the approved return."""
    asked = await http.post(
        f"/api/orders/{order['id']}/returns",
        headers=shopper.headers,
        json={"lines": [{"productId": mug["id"], "quantity": 2}], "reason": "damaged"},
    )
    assert asked.status_code == 201, asked.text
    return_id = asked.json()["id"]
    approved = await http.post(f"/api/admin/returns/{return_id}/approve", headers=staff)
    assert approved.status_code in (200, 202), approved.text
    body = await return_until(http, shopper.headers, return_id, "approved")
    return return_id, asked.json()["lines"][0]["id"], body


async def _received_and_closed(
    http: httpx.AsyncClient,
    staff: dict[str, str],
    shopper: Shopper,
    return_id: str,
    line_id: str,
    received: int,
    damaged: int,
) -> dict[str, Any]:
    """Staff receive the return's line; the return once closed (refunded)."""
    answer = await http.post(
        f"/api/admin/returns/{return_id}/receive",
        headers=staff,
        json={
            "lines": [
                {"returnLineId": line_id, "receivedQuantity": received, "damagedQuantity": damaged}
            ]
        },
    )
    assert answer.status_code in (200, 202), answer.text
    return await return_until(http, shopper.headers, return_id, "closed")


async def test_approve_receive_one_damaged_refund_once_restock_close(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    mug, order, shopper = await _delivered_order(http, staff, engine)
    return_id, line_id, body = await _two_mugs_back(http, staff, order, shopper, mug)
    assert body["labelUrl"]
    assert body["trackingCode"]
    assert body["shipBy"]
    again = await http.post(f"/api/admin/returns/{return_id}/approve", headers=staff)
    assert (again.status_code, again.json()["code"]) == (409, "return_not_requested")
    too_many = await http.post(
        f"/api/admin/returns/{return_id}/receive",
        headers=staff,
        json={"lines": [{"returnLineId": line_id, "receivedQuantity": 2, "damagedQuantity": 1}]},
    )
    assert (too_many.status_code, too_many.json()["code"]) == (422, "invalid_receipt")

    # A third of Stripe's answers fail: the SDK and the activity retry with the same key.
    await http.put("/_sandbox/stripe/faults", json={"failureRate": 0.3})
    done = await _received_and_closed(http, staff, shopper, return_id, line_id, 1, 1)
    await http.delete("/_sandbox/stripe/faults")

    # Goods 30.00 of 40.00, tax 2.50 x 3/4 -> 1.87, shipping 5.99 (the shop's fault).
    assert done["refundAmount"] == 3786
    [intent] = await intents_for(http, order["id"])
    assert await refunded(http, intent["id"]) == 3786
    assert [(ln["receivedQuantity"], ln["damagedQuantity"]) for ln in done["lines"]] == [(1, 1)]
    assert (await stock(http, staff, mug["id"]))["onHand"] == 9  # 10 - 2 sold + 1 back
    async with create_session_factory(engine)() as session:
        movements = (
            await session.exec(
                select(StockMovement.on_hand_delta).where(
                    StockMovement.product_id == mug["id"],
                    StockMovement.kind == MovementKind.RETURN,
                )
            )
        ).all()
        types = (
            await session.exec(
                select(OutboxEvent.type)
                .where(OutboxEvent.aggregate_id == order["id"])
                .order_by(col(OutboxEvent.seq))
            )
        ).all()
    assert movements == [1]
    assert [t for t in types if t.startswith(("return.", "payment.refunded"))] == [
        "return.requested",
        "return.approved",
        "return.received",
        "payment.refunded",
        "return.refunded",
    ]
    paid = (await http.get(f"/api/orders/{order['id']}", headers=shopper.headers)).json()
    assert paid["payment"]["amountRefunded"] == 3786
    # What a reset run reads (``returns.read``, which the run also asked at its start).
    steps = ReturnSteps(create_session_factory(engine), StripeGateway.from_settings(live.settings))
    stored = await steps.stored(return_id)
    assert (stored.status, stored.label_issued, stored.refund_amount, stored.refund_error) == (
        ReturnStatus.CLOSED,
        True,
        3786,
        None,
    )
    assert None not in (stored.approved_at, stored.ship_by, stored.received_at, stored.refunded_at)


async def test_a_declined_return_frees_its_units(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    mug, order, shopper = await _delivered_order(http, staff, engine)
    lines = {"lines": [{"productId": mug["id"], "quantity": 2}], "reason": "no_longer_needed"}
    asked = await http.post(
        f"/api/orders/{order['id']}/returns", headers=shopper.headers, json=lines
    )
    return_id = asked.json()["id"]
    held = await http.post(
        f"/api/orders/{order['id']}/returns", headers=shopper.headers, json=lines
    )
    assert held.json()["code"] == "return_quantity_exceeds_delivered"

    declined = await http.post(
        f"/api/admin/returns/{return_id}/decline", headers=staff, json={"reason": "used"}
    )
    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["declineReason"]) == ("declined", "used")
    late = await http.post(f"/api/admin/returns/{return_id}/approve", headers=staff)
    assert late.status_code == 409
    again = await http.post(
        f"/api/orders/{order['id']}/returns", headers=shopper.headers, json=lines
    )
    assert again.status_code == 201, again.text


async def test_a_receipt_onto_full_stock_is_refunded_and_closed_its_units_noted(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """The mug's stock topped up to within the 2 returned of the most a product holds:
    the receipt was refused (422 ``invalid_value``) or, racing the top-up, failed the
    return's workflow; either way the customer was not refunded. Now the return is
    received, refunded and closed as any other, the 2 units left off the stock and
    noted on the order's timeline for staff."""
    mug, order, shopper = await _delivered_order(http, staff, engine)
    return_id, line_id, _ = await _two_mugs_back(http, staff, order, shopper, mug)
    await fill_stock(engine, mug["id"], MAX_STOCK - 1)
    done = await _received_and_closed(http, staff, shopper, return_id, line_id, 2, 0)
    # Goods 30.00 of 40.00, tax 2.50 x 3/4 -> 1.87, shipping 5.99 (the shop's fault).
    assert done["refundAmount"] == 3786
    [intent] = await intents_for(http, order["id"])
    assert await refunded(http, intent["id"]) == 3786
    assert (await stock(http, staff, mug["id"]))["onHand"] == MAX_STOCK - 1
    timeline = (await http.get(f"/api/orders/{order['id']}", headers=staff)).json()["timeline"]
    assert [e["data"] for e in timeline if "notPutBack" in e["data"]] == [
        {
            "returnId": return_id,
            "returnLineId": line_id,
            "productId": mug["id"],
            "notPutBack": 2,
            "limit": MAX_STOCK,
        }
    ]
