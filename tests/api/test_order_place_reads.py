"""POST /api/orders answers a new order from what it wrote (issue #15): it reads none of
the order's lines, timeline, payment or parcels back, and its body and ETag are what a
read of the order gives."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from tests.orders.helpers import order_body, product, shopper_with_cart

READ_BACK = ("FROM order_lines", "FROM order_events", "FROM payments", "FROM shipments")


async def test_a_new_order_is_answered_without_reading_it_back(
    client: httpx.AsyncClient, app: FastAPI, staff: dict[str, str]
) -> None:
    item = await product(client, staff)
    shopper = await shopper_with_cart(client, [(item, 2)])
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    app_engine = app.state.shop.engine.sync_engine
    event.listen(app_engine, "before_cursor_execute", record)
    try:
        placed = await client.post(
            "/api/orders", headers=shopper.headers, json=order_body(shopper.cart_id)
        )
    finally:
        event.remove(app_engine, "before_cursor_execute", record)
    assert placed.status_code == 202, placed.text
    read_back = [
        s
        for s in statements
        if s.lstrip().startswith("SELECT") and any(table in s for table in READ_BACK)
    ]
    assert read_back == [], read_back

    # No worker serves the orders queue here: the order is still as it was placed.
    order_id = placed.json()["id"]
    read = await client.get(f"/api/orders/{order_id}", headers=shopper.headers)
    assert read.status_code == 200, read.text
    assert placed.json() == read.json()
    assert placed.headers["etag"] == read.headers["etag"]
    assert [(e["status"], e["message"]) for e in placed.json()["timeline"]] == [
        ("pending", "order placed")
    ]
    assert placed.json()["timeline"][0]["createdAt"] == placed.json()["createdAt"]

    # Checking the same cart out again answers the order as read.
    again = await client.post(
        "/api/orders", headers=shopper.headers, json=order_body(shopper.cart_id)
    )
    assert again.status_code == 202, again.text
    assert again.headers["etag"] == read.headers["etag"]
