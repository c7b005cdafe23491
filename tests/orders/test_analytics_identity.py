"""A guest who browses, fills a cart, signs in and pays is one person to analytics."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, or_, select

from core.db import create_session_factory
from models.analytics import AnalyticsEvent, AnalyticsIdentity
from tests.factories import PASSWORD, bearer, register
from tests.live import LiveStack
from tests.orders.helpers import eventually, order_body, product, wait_for


async def _journey_events(
    engine: AsyncEngine, visitor: str, cart_id: str, user_id: str
) -> list[AnalyticsEvent]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(AnalyticsEvent)
            .where(
                or_(
                    col(AnalyticsEvent.anonymous_id) == visitor,
                    col(AnalyticsEvent.session_id) == cart_id,
                    col(AnalyticsEvent.user_id) == user_id,
                )
            )
            .order_by(col(AnalyticsEvent.created_at))
        )
        return list(rows.all())


async def test_a_guest_who_signs_in_and_pays_is_one_person(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    item = await product(http, staff, price=1800, stock=5)
    visitor = f"anon_{uuid4().hex[:12]}"
    guest = {"X-Anonymous-Id": visitor}

    # As a guest: a view (the API's own event, written by the batch writer), a tracked
    # custom event, and a cart line (recorded with the cart, as anon:<cart id>).
    assert (await http.get(f"/api/products/{item['id']}", headers=guest)).status_code == 200
    tracked = await http.post(
        "/api/analytics/track", json={"event": "size_guide_open", "anonymousId": visitor}
    )
    assert tracked.status_code == 202, tracked.text
    added = await http.post(
        "/api/cart/items", headers=guest, json={"productId": item["id"], "quantity": 1}
    )
    assert added.status_code == 201, added.text
    guest_cart: dict[str, Any] = added.json()

    user = await register(http)
    signed_in = await http.post(
        "/api/auth/login",
        headers={"X-Cart-Token": guest_cart["cartToken"]},
        json={"email": user["email"], "password": PASSWORD, "anonymousId": visitor},
    )
    assert signed_in.status_code == 200, signed_in.text
    headers = bearer(signed_in.json())
    cart = (await http.get("/api/cart", headers=headers)).json()
    placed = await http.post("/api/orders", headers=headers, json=order_body(cart["id"]))
    assert placed.status_code == 202, placed.text
    order = await wait_for(http, headers, placed.json()["id"])
    assert order["status"] == "fulfillment_queued", order
    # Later, the same browser signed out: still the same person.
    later = await http.post("/api/analytics/track", json={"event": "page_open"}, headers=guest)
    assert later.status_code == 202, later.text

    wanted = {
        "product_view",
        "size_guide_open",
        "add_to_cart",
        "user_created",
        "checkout_start",
        "payment_start",
        "order_complete",
        "page_open",
    }

    async def all_written() -> bool:
        events = await _journey_events(engine, visitor, guest_cart["id"], user["id"])
        return {e.event for e in events} >= wanted

    await eventually(all_written, within=20)
    events = await _journey_events(engine, visitor, guest_cart["id"], user["id"])
    assert {e.person_id for e in events} == {user["id"]}, [(e.event, e.person_id) for e in events]
    async with create_session_factory(engine)() as session:
        link = await session.get(AnalyticsIdentity, visitor)
    assert link is not None
    assert link.user_id == user["id"]
    # The guest's events moved at sign-in: received again then (the rollups recompute).
    before = [e for e in events if e.event in {"product_view", "size_guide_open", "add_to_cart"}]
    assert all(e.received_at >= link.linked_at for e in before)
