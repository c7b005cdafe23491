"""Cart reminders end to end: the API keeps the timer in step; the email really goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from core.settings import Settings
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
