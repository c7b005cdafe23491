"""Inventory endpoints (staff) and live stock in the catalogue."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update

from core.db import create_session_factory
from models.inventory import StockLevel
from models.outbox import OutboxEvent
from services.events.handlers import auto_reorder
from services.events.handling import handle_once
from tests.factories import signed_up, unique_slug


@pytest.fixture
async def product(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/api/products",
        headers=staff,
        json={
            "sku": unique_slug("stk"),
            "name": "Counted Widget",
            "price": 500,
            "lowStockThreshold": 3,
            "autoReorder": True,
            "reorderQuantity": 20,
        },
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def test_adjust_and_read_the_ledger(
    client: httpx.AsyncClient, staff: dict[str, str], product: dict[str, Any]
) -> None:
    path = f"/api/inventory/{product['id']}"
    added = await client.post(
        f"{path}/adjust", headers=staff, json={"delta": 12, "reason": "delivery"}
    )
    assert added.status_code == 200, added.text
    assert added.json() == {
        "productId": product["id"],
        "onHand": 12,
        "reserved": 0,
        "available": 12,
        "lowStockThreshold": 3,
    }
    too_much = await client.post(
        f"{path}/adjust", headers=staff, json={"delta": -13, "reason": "count"}
    )
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "insufficient_stock"
    await client.post(f"{path}/adjust", headers=staff, json={"delta": -2, "reason": "damaged"})
    ledger = (await client.get(path, headers=staff)).json()
    assert (ledger["onHand"], ledger["available"], ledger["total"]) == (10, 10, 2)
    assert [(m["kind"], m["onHandDelta"], m["reason"]) for m in ledger["movements"]] == [
        ("adjustment", -2, "damaged"),
        ("adjustment", 12, "delivery"),
    ]
    assert sum(m["onHandDelta"] for m in ledger["movements"]) == ledger["onHand"]
    bad = await client.post(f"{path}/adjust", headers=staff, json={"delta": "lots"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"delta", "reason"}
    missing = await client.get("/api/inventory/prod_nope", headers=staff)
    assert missing.status_code == 404


async def test_the_catalogue_shows_live_stock_and_filters_by_it(
    client: httpx.AsyncClient, staff: dict[str, str], product: dict[str, Any]
) -> None:
    detail = f"/api/products/{product['id']}"
    assert (await client.get(detail)).json()["available"] == 0  # cached from here on
    await client.post(
        f"/api/inventory/{product['id']}/adjust", headers=staff, json={"delta": 4, "reason": "in"}
    )
    # Shown once the stock row's notification has reached the process (a moment).
    deadline = time.monotonic() + 30
    while (await client.get(detail)).json()["available"] != 4:
        assert time.monotonic() < deadline, "the restock never showed"
    search: dict[str, str | int] = {"search": "Counted Widget", "limit": 100}
    in_stock = await client.get("/api/products", params=search | {"inStock": "true"})
    assert product["id"] in {p["id"] for p in in_stock.json()["items"]}
    out = await client.get("/api/products", params=search | {"inStock": "false"})
    assert product["id"] not in {p["id"] for p in out.json()["items"]}


async def test_low_stock_list_and_purchase_orders(
    client: httpx.AsyncClient, staff: dict[str, str], product: dict[str, Any], engine: AsyncEngine
) -> None:
    path = f"/api/inventory/{product['id']}"
    await client.post(f"{path}/adjust", headers=staff, json={"delta": 10, "reason": "in"})
    await client.post(f"{path}/adjust", headers=staff, json={"delta": -8, "reason": "out"})
    # The low-stock event's auto-reorder subscriber opens the purchase order.
    sessions = create_session_factory(engine)
    async with sessions() as session:
        [event_id] = (
            await session.exec(
                select(OutboxEvent.id).where(
                    OutboxEvent.aggregate_id == product["id"],
                    OutboxEvent.type == "inventory.low_stock",
                )
            )
        ).all()
    assert await handle_once(sessions, auto_reorder(), event_id) is True
    # Lowest first: other tests' products at 0 or 1 may fill the first pages.
    low: set[str] = set()
    for page in range(1, 10_000):
        listed = (
            await client.get(
                "/api/inventory/low-stock", headers=staff, params={"limit": 100, "page": page}
            )
        ).json()
        low |= {s["productId"] for s in listed["items"]}
        if product["id"] in low or not listed["items"]:
            break
    assert product["id"] in low
    orders = (
        await client.get(
            "/api/purchase-orders",
            headers=staff,
            params={"status": "open", "productId": product["id"]},
        )
    ).json()
    # Issue 11: paginated like every other list.
    assert set(orders) == {"items", "total", "page", "limit"}
    mine = [po for po in orders["items"] if po["productId"] == product["id"]]
    by_product = (
        await client.get("/api/purchase-orders", headers=staff, params={"productId": product["id"]})
    ).json()
    assert [po["id"] for po in by_product["items"]] == [mine[0]["id"]]
    assert by_product["total"] == 1
    assert [(po["quantity"], po["status"]) for po in mine] == [(20, "open")]
    received = await client.post(f"/api/purchase-orders/{mine[0]['id']}/receive", headers=staff)
    assert received.status_code == 200
    assert received.json()["status"] == "received"
    assert (await client.get(path, headers=staff)).json()["onHand"] == 22
    again = await client.post(f"/api/purchase-orders/{mine[0]['id']}/receive", headers=staff)
    assert again.status_code == 409


async def test_inventory_is_staff_only(client: httpx.AsyncClient, product: dict[str, Any]) -> None:
    _, customer = await signed_up(client)
    for method, path, body in [
        ("GET", f"/api/inventory/{product['id']}", None),
        ("POST", f"/api/inventory/{product['id']}/adjust", {"delta": 5, "reason": "x"}),
        ("GET", "/api/inventory/low-stock", None),
        ("GET", "/api/purchase-orders", None),
    ]:
        assert (await client.request(method, path, headers=customer, json=body)).status_code == 403
        assert (await client.request(method, path, json=body)).status_code == 401


async def test_stock_past_the_column_s_range_is_422_and_changes_nothing(
    client: httpx.AsyncClient, staff: dict[str, str], product: dict[str, Any], engine: AsyncEngine
) -> None:
    """2,147 deliveries of a million each fill the on-hand column (PostgreSQL integer):
    one more overflowed in the database's own arithmetic and answered 500 (the driver's
    generic error, not the DataError the 422 was mapped from). It is the client's value:
    422 invalid_value, and neither the stock nor the ledger changed."""
    path = f"/api/inventory/{product['id']}"
    first = await client.post(f"{path}/adjust", headers=staff, json={"delta": 1, "reason": "x"})
    assert first.status_code == 200, first.text
    async with create_session_factory(engine)() as session:
        await session.exec(
            update(StockLevel)
            .where(col(StockLevel.product_id) == product["id"])
            .values(on_hand=2_147_000_000)
        )
        await session.commit()
    before = (await client.get(path, headers=staff)).json()
    over = await client.post(
        f"{path}/adjust", headers=staff, json={"delta": 1_000_000, "reason": "delivery"}
    )
    assert over.status_code == 422, over.text
    assert over.json()["code"] == "invalid_value"
    after = (await client.get(path, headers=staff)).json()
    assert after == before
    assert after["onHand"] == 2_147_000_000
