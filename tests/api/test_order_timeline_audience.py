"""An order's timeline as its reader sees it: the customer reads the entries written for
customers only (detail, long-poll and its ETag, event stream); staff read every entry,
each marked with its audience."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.settings import Settings
from models.orders import OrderStatus, TimelineAudience
from services.analytics import AnalyticsRecorder
from services.orders import OrderService
from tests.api.test_order_long_poll import (
    _events,
    listening,
    move,
    placed_order,
    streaming_from_placed,
    until,
    waiting_on,
)
from tests.factories import signed_up

STAFF_NOTE = "stock released"


async def noted(
    engine: AsyncEngine, settings: Settings, order_id: str, audience: TimelineAudience
) -> None:
    """A timeline entry without a status change, committed, as a compensation writes it."""
    async with transaction(create_session_factory(engine)) as session:
        service = OrderService(session, settings, AnalyticsRecorder(False))
        order = await service.orders.require(order_id)
        await service.note(order, STAFF_NOTE, {"products": 2}, audience=audience)


def messages(order: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["message"], e["audience"]) for e in order["timeline"]]


async def test_a_customer_does_not_see_a_staff_only_entry_and_staff_do(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, staff: dict[str, str]
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    before = await client.get(url, headers=headers)
    etag = before.headers["etag"]

    await noted(engine, settings, order_id, TimelineAudience.STAFF)

    seen = await client.get(url, headers=headers)
    assert seen.status_code == 200, seen.text
    assert messages(seen.json()) == [("placed", "customer")]
    # The customer's order has not changed: same ETag, so a conditional read is a 304.
    assert seen.headers["etag"] == etag
    assert (await client.get(url, headers=headers | {"If-None-Match": etag})).status_code == 304

    as_staff = await client.get(url, headers=staff)
    assert as_staff.status_code == 200, as_staff.text
    assert messages(as_staff.json()) == [("placed", "customer"), (STAFF_NOTE, "staff")]
    assert as_staff.json()["timeline"][-1]["data"] == {"products": 2}
    assert as_staff.headers["etag"] != etag

    # The same note written for the customer is the customer's to see.
    await noted(engine, settings, order_id, TimelineAudience.CUSTOMER)
    again = await client.get(url, headers=headers | {"If-None-Match": etag})
    assert again.status_code == 200
    assert messages(again.json()) == [("placed", "customer"), (STAFF_NOTE, "customer")]


async def test_a_customer_long_poll_sleeps_through_a_staff_only_entry(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine, settings: Settings
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    etag = (await client.get(f"/api/orders/{order_id}", headers=headers)).headers["etag"]
    changes = await listening(app)
    waiting = await waiting_on(client, changes, order_id, headers, etag)
    delivered = changes.deliveries

    await noted(engine, settings, order_id, TimelineAudience.STAFF)
    await until(lambda: changes.deliveries > delivered, "the staff entry is heard")
    await move(engine, settings, order_id, OrderStatus.RESERVED)

    # Answered at the status change, not at the staff entry before it.
    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "reserved"
    assert messages(answer.json()) == [("placed", "customer"), ("now reserved", "customer")]


async def test_the_event_stream_shows_a_customer_only_their_entries_and_staff_all(
    client: httpx.AsyncClient,
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    staff: dict[str, str],
) -> None:
    user, headers = await signed_up(client)
    order_id = await placed_order(engine, user)
    url = f"/api/orders/{order_id}"
    streaming = await streaming_from_placed(client, app, order_id, headers)
    await noted(engine, settings, order_id, TimelineAudience.STAFF)
    for status in (OrderStatus.RESERVED, OrderStatus.CONFIRMED, OrderStatus.FULFILLMENT_QUEUED):
        await move(engine, settings, order_id, status)
    answer = await streaming
    assert answer.status_code == 200, answer.text
    orders = [json.loads(e["data"]) for e in _events(answer.text)]
    # No event for the staff entry (the order as the customer sees it did not change),
    # and none of the events carries it.
    assert "pending" not in [o["status"] for o in orders]
    assert orders, answer.text
    assert all(STAFF_NOTE not in [m for m, _ in messages(o)] for o in orders)
    assert {a for o in orders for _, a in messages(o)} == {"customer"}

    as_staff = _events((await client.get(f"{url}/events", headers=staff)).text)
    [settled] = [json.loads(e["data"]) for e in as_staff]
    assert (STAFF_NOTE, "staff") in messages(settled)
    assert messages(settled)[0] == ("placed", "customer")
