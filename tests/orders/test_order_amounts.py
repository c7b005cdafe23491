"""Totals one payment cannot take: refused at validate-order with a stable code, before
anything is held or written to the order's lines."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from integrations.payments.gateway import MAX_CHARGE
from models.catalog import MAX_AMOUNT
from tests.orders.helpers import (
    intents_for,
    outbox_types,
    place,
    product,
    shopper_with_cart,
    stock,
    wait_for,
)


async def test_a_total_above_what_one_payment_takes_fails_the_order_at_once(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """Two units at the largest price a product may have: 42,949,672.94 USD, more than an
    order's integer columns hold and more than Stripe takes in one PaymentIntent. Writing
    its lines overflowed, a bug to the workflow: three attempts, then a failureCode of
    ``validate_order_failed`` that told the shopper nothing."""
    item = await product(http, staff, price=MAX_AMOUNT, stock=2)
    shopper = await shopper_with_cart(http, [(item, 2)])
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "order_total_too_large"), order
    assert str(MAX_CHARGE) in order["failureDetail"]
    assert order["items"] == []
    assert await intents_for(http, placed["id"]) == []
    assert (await stock(http, staff, item["id"]))["reserved"] == 0
    assert await outbox_types(engine, placed["id"]) == ["order.failed"]
