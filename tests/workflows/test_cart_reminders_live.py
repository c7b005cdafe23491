"""Cart reminders end to end: the API keeps the timer in step; the email really goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from core.settings import Settings
from services.users import erased_email
from temporal.clients.carts import workflow_id
from tests.factories import bearer, login, register, staff_headers, unique_email, unique_slug
from tests.live import LiveStack, live_stack


@pytest.fixture(scope="module")
async def live(settings: Settings, temporal_client: Client) -> AsyncIterator[LiveStack]:
    quick = Settings.model_validate(
        settings.model_dump() | {"cart_abandonment_delay_hours": 4 / 3600}  # four seconds
    )
    async with live_stack(quick, temporal_client) as running:
        yield running


async def _shopper_with_a_product(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> tuple[dict[str, Any], dict[str, str], str]:
    staff = await staff_headers(http, engine)
    product = (
        await http.post(
            "/api/products",
            headers=staff,
            json={"sku": unique_slug("rem"), "name": "Reminder Mug", "price": 800},
        )
    ).json()
    await http.post(
        f"/api/inventory/{product['id']}/adjust", headers=staff, json={"delta": 5, "reason": "in"}
    )
    email = unique_email("cart")
    user = await register(http, email=email, name="Cart Keeper")
    return user, bearer(await login(http, email=email)), product["id"]


async def test_an_untouched_cart_gets_one_reminder(live: LiveStack, engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=20) as http:
        user, headers, product = await _shopper_with_a_product(http, engine)
        cart = (
            await http.post("/api/cart/items", headers=headers, json={"productId": product})
        ).json()
        handle = live.client.get_workflow_handle(workflow_id(cart["id"]))
        assert await asyncio.wait_for(handle.result(), 30) == "reminded"
        box = (await http.get("/_sandbox/mail/messages", params={"to": user["email"]})).json()
        subjects = [m["subject"] for m in box]
        assert subjects.count("Cart Keeper, your cart is waiting") == 1
        # Written to the address and name read when it was sent: the run's history (its
        # input, the steps' inputs and answers) holds neither, so an erasure leaves none
        # in Temporal. Before, the start's input and both steps carried them.
        history = await handle.fetch_history()
        for personal in (user["email"], "Cart Keeper"):
            assert [
                e.event_id for e in history.events if personal.encode() in e.SerializeToString()
            ] == []


async def test_emptying_the_cart_stops_the_timer(live: LiveStack, engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=20) as http:
        user, headers, product = await _shopper_with_a_product(http, engine)
        cart = (
            await http.post("/api/cart/items", headers=headers, json={"productId": product})
        ).json()
        handle = live.client.get_workflow_handle(workflow_id(cart["id"]))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert (await http.delete("/api/cart", headers=headers)).status_code == 200
        assert await asyncio.wait_for(handle.result(), 30) == "closed"
        box = (await http.get("/_sandbox/mail/messages", params={"to": user["email"]})).json()
        assert [m for m in box if "cart is waiting" in m["subject"]] == []


async def test_an_account_erased_while_its_reminder_is_retried_is_not_written_to(
    live: LiveStack, engine: AsyncEngine
) -> None:
    """The provider is down when the reminder is due; the account is deleted while it is
    retried: when the provider is back, nothing goes to the old address or the erased
    one (before, the retry sent the reminder to the address read at the deadline)."""
    async with httpx.AsyncClient(base_url=live.base_url, timeout=20) as http:
        user, headers, product = await _shopper_with_a_product(http, engine)
        email = user["email"]
        down = await http.put("/_sandbox/sendgrid/faults", json={"mode": "down", "to": email})
        assert down.status_code == 204
        try:
            cart = (
                await http.post("/api/cart/items", headers=headers, json={"productId": product})
            ).json()
            handle = live.client.get_workflow_handle(workflow_id(cart["id"]))
            await _until_a_send_failed(engine, cart["id"])
            erased = await http.delete(f"/api/users/{user['id']}", headers=headers)
            assert erased.status_code == 204, erased.text
        finally:
            assert (await http.delete("/_sandbox/sendgrid/faults")).status_code == 204
        await asyncio.wait_for(handle.result(), 30)
        for to in (email, erased_email(user["id"])):
            box = (await http.get("/_sandbox/mail/messages", params={"to": to})).json()
            assert [m for m in box if "cart is waiting" in m["subject"]] == []


async def _until_a_send_failed(engine: AsyncEngine, cart_id: str) -> None:
    """Until the cart's reminder has failed once against the outage."""
    async with engine.connect() as conn:
        for _ in range(300):
            failed = await conn.execute(
                text(
                    "SELECT count(*) FROM email_messages WHERE idempotency_key LIKE :key"
                    " AND last_error IS NOT NULL"
                ),
                {"key": f"cart-reminder:{cart_id}:%"},
            )
            if failed.scalar_one():
                return
            await conn.rollback()
            await asyncio.sleep(0.1)
    raise AssertionError(f"the reminder for {cart_id} was never tried")
