"""What an order may be charged: never more than one payment takes, and with
``expectedTotal`` never other than what the shopper was shown. Both are refused at
validate-order with a stable code, before anything is held or charged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from integrations.payments.gateway import MAX_CHARGE
from models.catalog import MAX_AMOUNT
from tests.factories import unique_slug
from tests.orders.helpers import (
    ADDRESS,
    intents_for,
    order_body,
    outbox_types,
    place,
    product,
    shopper_with_cart,
    stock,
    wait_for,
)


@pytest.mark.parametrize("coupon", [None, "99"], ids=["total", "lines-under-a-coupon"])
async def test_an_order_above_what_one_payment_takes_fails_at_once(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, coupon: str | None
) -> None:
    """Two units at the largest price a product may have: 42,949,672.94 USD, more than an
    order's integer columns hold and more than Stripe takes in one PaymentIntent. Writing
    its lines overflowed, a bug to the workflow: three attempts, then a failureCode of
    ``validate_order_failed`` that told the shopper nothing. A 99 % coupon brings the
    total under the limit, not the lines."""
    item = await product(http, staff, price=MAX_AMOUNT, stock=2)
    shopper = await shopper_with_cart(http, [(item, 2)])
    if coupon is not None:
        code = unique_slug("BIG").upper()
        body = {"code": code, "kind": "percentage", "percent": coupon}
        assert (await http.post("/api/coupons", headers=staff, json=body)).status_code == 201
        applied = await http.post("/api/cart/coupon", headers=shopper.headers, json={"code": code})
        assert 0 < applied.json()["totals"]["total"] < MAX_CHARGE, applied.text
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "order_total_too_large"), order
    assert str(MAX_CHARGE) in order["failureDetail"]
    assert order["items"] == []
    assert await intents_for(http, placed["id"]) == []
    assert (await stock(http, staff, item["id"]))["reserved"] == 0
    assert await outbox_types(engine, placed["id"]) == ["order.failed"]


async def test_an_order_is_charged_the_total_shown_or_nothing(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """The shopper saw the cart's total; the price rose before the order was priced. With
    ``expectedTotal`` the order fails ``price_changed`` (nothing held, nothing charged,
    the cart still open); placed again with the new total it goes through. Without it
    the order was charged the new price, which nobody had shown the shopper."""
    item = await product(http, staff, price=2500, stock=5)
    shopper = await shopper_with_cart(http, [(item, 1)])
    destination = {"country": "US", "state": ADDRESS["state"]}
    shown = (await http.get("/api/cart", headers=shopper.headers, params=destination)).json()
    raised = await http.patch(f"/api/products/{item['id']}", headers=staff, json={"price": 3000})
    assert raised.status_code == 200, raised.text

    async def place_expecting(total: int) -> dict[str, Any]:
        placed = await http.post(
            "/api/orders",
            headers=shopper.headers,
            json=order_body(shopper.cart_id, expectedTotal=total),
        )
        assert placed.status_code == 202, placed.text
        return await wait_for(http, shopper.headers, placed.json()["id"])

    failed = await place_expecting(shown["totals"]["total"])
    assert (failed["status"], failed["failureCode"]) == ("failed", "price_changed"), failed
    assert failed["totals"] is None  # never priced for good
    [why] = [e["data"] for e in failed["timeline"] if e["status"] == "failed"]
    assert why["expectedTotal"] == shown["totals"]["total"] < why["total"]
    assert await intents_for(http, failed["id"]) == []
    assert (await stock(http, staff, item["id"]))["reserved"] == 0

    now = (await http.get("/api/cart", headers=shopper.headers, params=destination)).json()
    assert now["id"] == shopper.cart_id
    assert now["totals"]["total"] > shown["totals"]["total"]
    order = await place_expecting(now["totals"]["total"])
    assert order["status"] == "fulfillment_queued", order
    assert order["payment"]["amountCaptured"] == now["totals"]["total"]
