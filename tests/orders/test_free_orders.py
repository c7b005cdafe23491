"""A free order (a 100 % coupon, no shipping to pay) end to end: nothing is charged (Stripe
refuses a PaymentIntent of 0), the order is confirmed and queued, and undoing it moves no
money. A total above 0 but below Stripe's minimum charge is refused with its own code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.settings import Settings
from tests.factories import unique_slug
from tests.live import LiveStack, live_stack
from tests.orders.helpers import (
    Shopper,
    analytics_for,
    eventually,
    intents_for,
    outbox_types,
    place,
    product,
    shopper_with_cart,
    stock,
    wait_for,
)


@pytest.fixture(scope="module")
async def live(settings: Settings, temporal_client: Client) -> AsyncIterator[LiveStack]:
    """The live stack with no shipping charge (``SHIPPING_FLAT_RATE=0``): with a 100 %
    coupon, an order's total is 0."""
    free_shipping = settings.model_copy(update={"shipping_flat_rate": 0})
    async with live_stack(free_shipping, temporal_client) as running:
        yield running


async def free_cart(
    http: httpx.AsyncClient, staff: dict[str, str], *, stock_level: int = 5
) -> tuple[Shopper, dict[str, object], str]:
    code = unique_slug("FREE").upper()
    created = await http.post(
        "/api/coupons", headers=staff, json={"code": code, "kind": "percentage", "percent": "100"}
    )
    assert created.status_code == 201, created.text
    item = await product(http, staff, price=1999, stock=stock_level)
    shopper = await shopper_with_cart(http, [(item, 2)])
    applied = await http.post("/api/cart/coupon", headers=shopper.headers, json={"code": code})
    assert applied.status_code == 200, applied.text
    assert applied.json()["totals"]["total"] == 0
    return shopper, item, code


async def mail_to(http: httpx.AsyncClient, shopper: Shopper, subject: str) -> list[str]:
    mail = await http.get("/_sandbox/mail/messages", params={"to": shopper.user["email"]})
    return [m["text"] for m in mail.json() if subject in m["subject"]]


async def test_a_free_order_is_confirmed_and_queued_without_a_charge(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    shopper, item, code = await free_cart(http, staff)
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    totals = order["totals"]
    assert (totals["subtotal"], totals["couponDiscount"], totals["total"]) == (3998, 3998, 0)
    assert order["payment"] is None
    assert await intents_for(http, placed["id"]) == []
    messages = [e["message"] for e in order["timeline"]]
    assert "nothing to charge: the total is 0" in messages
    assert (await stock(http, staff, str(item["id"])))["onHand"] == 3  # sold
    used = await http.get(f"/api/coupons/{code}", headers=staff)
    assert used.json()["usedCount"] == 1
    assert await outbox_types(engine, placed["id"]) == ["order.created", "fulfillment.order_ready"]
    # No payment_start: nothing was paid.
    assert await analytics_for(engine, placed["id"]) == ["checkout_start", "order_complete"]

    async def confirmed() -> bool:
        return bool(await mail_to(http, shopper, "confirmed"))

    await eventually(confirmed)
    [text] = await mail_to(http, shopper, "confirmed")
    assert "nothing was charged" in text
    assert "We have received your payment" not in text

    # Staff cannot refund what was never charged.
    refund = await http.post(
        f"/api/admin/orders/{placed['id']}/refunds", headers=staff, json={"reason": "goodwill"}
    )
    assert (refund.status_code, refund.json()["code"]) == (409, "payment_not_refundable")


async def test_a_free_order_cancelled_after_it_was_queued_moves_no_money(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    shopper, item, code = await free_cart(http, staff)
    placed = await place(http, shopper)
    await wait_for(http, shopper.headers, placed["id"])
    coupon = f"/api/coupons/{code}"
    assert (await http.get(coupon, headers=staff)).json()["usedCount"] == 1

    async def fulfilment_opened() -> bool:
        response = await http.post(f"/api/orders/{placed['id']}/cancel", headers=shopper.headers)
        return response.status_code in (200, 202)

    # Cancelled through its fulfilment, once the relay has opened it.
    await eventually(fulfilment_opened)
    order = await wait_for(http, shopper.headers, placed["id"], {"cancelled"})
    assert order["payment"] is None
    assert await intents_for(http, placed["id"]) == []
    assert (await stock(http, staff, str(item["id"])))["onHand"] == 5  # given back
    # ... and the coupon's use, as a cancel before the order was queued gives it back.
    assert (await http.get(coupon, headers=staff)).json()["usedCount"] == 0
    assert "coupon use given back" in [e["message"] for e in order["timeline"]]
    assert await outbox_types(engine, placed["id"]) == [
        "order.created",
        "fulfillment.order_ready",
        "order.cancelled",
    ]

    async def cancelled() -> bool:
        return bool(await mail_to(http, shopper, "cancelled"))

    await eventually(cancelled)
    [text] = await mail_to(http, shopper, "cancelled")
    assert "nothing was charged" in text


async def test_a_total_below_stripes_minimum_charge_fails_before_anything_is_held(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """0.30 USD (and its tax): Stripe takes 0.50 USD at least. Sent to Stripe, the order
    failed at process-payment with Stripe's refusal (``payment_error``)."""
    item = await product(http, staff, price=30, stock=5)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "order_total_too_small"), order
    [why] = [e["data"] for e in order["timeline"] if e["status"] == "failed"]
    assert (why["minimum"], 0 < why["total"] < 50) == (50, True)
    assert await intents_for(http, placed["id"]) == []
    assert (await stock(http, staff, str(item["id"])))["reserved"] == 0
    assert await outbox_types(engine, placed["id"]) == ["order.failed"]
