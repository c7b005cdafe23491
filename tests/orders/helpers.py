"""Placing orders through the API and waiting for the workflow to settle them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client

from core.db import create_session_factory, transaction
from integrations.sandbox.stripe_objects import ANSWER_KEPT, ANSWER_KIND
from models.analytics import AnalyticsEvent
from models.outbox import OutboxEvent
from models.payments import Payment, PaymentEvent
from models.sandbox import SandboxStripeObject
from temporal.clients.orders import workflow_id
from tests.factories import signed_up, stocked_product

ADDRESS = {"street": "123 Main St", "city": "Boston", "state": "MA", "zip": "02101"}
SETTLED = {"fulfillment_queued", "failed", "cancelled"}
SANDBOX_KEY = {"Authorization": "Bearer sk_test_shopweave_sandbox"}


@dataclass
class Shopper:
    user: dict[str, Any]
    headers: dict[str, str]
    cart_id: str


async def shopper_with_cart(
    http: httpx.AsyncClient, lines: list[tuple[dict[str, Any], int]]
) -> Shopper:
    user, headers = await signed_up(http)
    cart_id = ""
    for product, quantity in lines:
        added = await http.post(
            "/api/cart/items",
            headers=headers,
            json={"productId": product["id"], "quantity": quantity},
        )
        assert added.status_code in (200, 201), added.text
        cart_id = added.json()["id"]
    return Shopper(user, headers, cart_id)


async def product(
    http: httpx.AsyncClient, staff: dict[str, str], *, price: int = 2500, stock: int = 10
) -> dict[str, Any]:
    return await stocked_product(http, staff, price=price, stock=stock)


def order_body(cart_id: str, token: str = "pm_card_visa", **extra: Any) -> dict[str, Any]:
    return {
        "cartId": cart_id,
        "shippingAddress": ADDRESS,
        "paymentMethod": {"type": "card", "token": token},
    } | extra


async def place(
    http: httpx.AsyncClient, shopper: Shopper, token: str = "pm_card_visa", **headers: str
) -> dict[str, Any]:
    response = await http.post(
        "/api/orders", headers=shopper.headers | headers, json=order_body(shopper.cart_id, token)
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def paid_order(
    http: httpx.AsyncClient, staff: dict[str, str], *, price: int = 3000
) -> tuple[Shopper, dict[str, Any]]:
    """One unit of a new product at ``price``, ordered, paid and queued for fulfilment."""
    item = await product(http, staff, price=price)
    shopper = await shopper_with_cart(http, [(item, 1)])
    order = await wait_for(http, shopper.headers, (await place(http, shopper))["id"])
    assert order["status"] == "fulfillment_queued", order
    return shopper, order


async def wait_for(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    order_id: str,
    statuses: set[str] = SETTLED,
    within: float = 60,
    poll: float = 0.1,
) -> dict[str, Any]:
    """Poll the order (every ``poll`` seconds) until its status is one of ``statuses``."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            response = await http.get(f"/api/orders/{order_id}", headers=headers)
        except httpx.TransportError:
            # A pooled keep-alive connection the server closed just then: ask again.
            await asyncio.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        if order["status"] in statuses:
            return order
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"order {order_id} stuck in {order['status']}: {order}")
        await asyncio.sleep(poll)


async def stock(http: httpx.AsyncClient, staff: dict[str, str], product_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/inventory/{product_id}", headers=staff)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def intents_for(http: httpx.AsyncClient, order_id: str) -> list[dict[str, Any]]:
    """Every PaymentIntent the Stripe sandbox holds for an order (its list endpoint)."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"starting_after": after} if after else {})
        response = await http.get(
            "/_sandbox/stripe/v1/payment_intents", headers=SANDBOX_KEY, params=params
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found += [i for i in page["data"] if i["metadata"].get("order_id") == order_id]
        if not page["has_more"]:
            return found
        after = page["data"][-1]["id"]


async def outbox_types(engine: AsyncEngine, order_id: str) -> list[str]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(OutboxEvent.type)
            .where(OutboxEvent.aggregate_id == order_id)
            .order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def provider_events(engine: AsyncEngine, order_id: str, type: str) -> list[dict[str, Any]]:
    """The data of the provider's webhooks of ``type`` recorded against the order's payment."""
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(PaymentEvent.data)
            .join(Payment, col(Payment.id) == col(PaymentEvent.payment_id))
            .where(Payment.order_id == order_id, PaymentEvent.type == type)
            .order_by(col(PaymentEvent.created_at))
        )
        return [dict(r) for r in rows.all()]


async def analytics_for(engine: AsyncEngine, order_id: str) -> list[str]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(AnalyticsEvent.event)
            .where(col(AnalyticsEvent.properties)["orderId"].astext == order_id)
            .order_by(col(AnalyticsEvent.created_at))
        )
        return list(rows.all())


async def refunded(http: httpx.AsyncClient, intent_id: str) -> int:
    """How much of a PaymentIntent was refunded (Stripe keeps refunds on the charge; a
    failed refund gave its money back)."""
    response = await http.get(
        "/_sandbox/stripe/v1/refunds", headers=SANDBOX_KEY, params={"payment_intent": intent_id}
    )
    assert response.status_code == 200, response.text
    return sum(int(r["amount"]) for r in response.json()["data"] if r["status"] != "failed")


async def stripe_forgets_keys(engine: AsyncEngine, part: str) -> int:
    """Stripe's 24 hours pass for the sandbox's idempotency keys holding ``part``: their
    answers (kept with the change they answer) are no longer replayed. How many."""
    async with transaction(create_session_factory(engine)) as session:
        rows = (
            await session.exec(
                select(SandboxStripeObject).where(
                    SandboxStripeObject.kind == ANSWER_KIND,
                    col(SandboxStripeObject.data)["key"].astext.contains(part),
                )
            )
        ).all()
        for row in rows:
            row.created_at -= ANSWER_KEPT + timedelta(minutes=1)
            session.add(row)
        return len(rows)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    """Wait until ``check()`` is true (polling every 50 ms), or fail."""
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within}s: {check}")


@dataclass(frozen=True)
class ActivityRun:
    """One activity of an order's workflow, as its history records it."""

    activity: str
    attempt: int  # of the attempt that finished it
    # How the attempt before that one ended, if it timed out (heartbeat: its worker died).
    timeout_before: TimeoutType.ValueType


async def activity_runs(client: Client, order_id: str) -> list[ActivityRun]:
    history = await client.get_workflow_handle(workflow_id(order_id)).fetch_history()
    names: dict[int, str] = {}
    runs: list[ActivityRun] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            names[event.event_id] = scheduled.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            runs.append(
                ActivityRun(
                    activity=names[started.scheduled_event_id],
                    attempt=started.attempt,
                    timeout_before=started.last_failure.timeout_failure_info.timeout_type,
                )
            )
    return runs
