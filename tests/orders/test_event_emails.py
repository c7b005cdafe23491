"""The events a real checkout publishes, delivered by the live relay to their subscribers:
the payment-failed email (and no ``order_failed`` email from the workflow), the refund
emails with their balances, and the fulfilment priority. Delivering an event again
(``handle_once``) sends nothing more."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import SessionFactory, create_session_factory
from integrations.email.factory import build_sender
from integrations.email.templates import EmailTemplates
from models.outbox import OutboxEvent
from services.email import EmailService
from services.events.handlers import payment_failed_email, refund_email
from services.events.handling import handle_once
from services.fulfillment_priority import ShippingMethod, calculate_priority
from temporal.clients.orders import workflow_id
from tests.live import LiveStack
from tests.orders.helpers import place, product, shopper_with_cart, wait_for


def _emails(live: LiveStack, sessions: SessionFactory) -> EmailService:
    return EmailService(
        sessions, build_sender(live.settings), EmailTemplates(), live.settings.email_from
    )


async def _events(engine: AsyncEngine, order_id: str, type: str) -> list[OutboxEvent]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == order_id, OutboxEvent.type == type)
            .order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def _delivered(
    engine: AsyncEngine, order_id: str, type: str, count: int
) -> list[OutboxEvent]:
    """The order's ``count`` events of ``type``, once the relay delivered them to all."""
    for _ in range(300):
        events = await _events(engine, order_id, type)
        if len(events) == count and all(e.delivered_at is not None for e in events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError(f"{type} of {order_id} not delivered: {events}")


async def _mailbox(http: httpx.AsyncClient, to: str, order_id: str) -> list[dict[str, Any]]:
    """The messages to ``to`` about the order (not the welcome email), oldest first."""
    messages: list[dict[str, Any]] = (
        await http.get("/_sandbox/mail/messages", params={"to": to})
    ).json()
    return [m for m in messages[::-1] if order_id in m["subject"]]


async def test_a_declined_payment_gets_one_email_from_the_event_and_none_from_the_workflow(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    item = await product(http, staff, stock=5)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_chargeDeclinedInsufficientFunds")
    order = await wait_for(http, shopper.headers, placed["id"])
    assert (order["status"], order["failureCode"]) == ("failed", "payment_declined")
    await live.client.get_workflow_handle(workflow_id(placed["id"])).result()  # all done
    [event] = await _delivered(engine, placed["id"], "payment.failed", 1)
    assert event.data["reason"] == "insufficient_funds"

    sessions = create_session_factory(engine)
    subscriber = payment_failed_email(_emails(live, sessions), live.settings)
    assert await handle_once(sessions, subscriber, event.id) is False  # the relay's receipt
    # One email, from the event; none (order_failed) from the workflow.
    [mail] = await _mailbox(http, shopper.user["email"], placed["id"])
    assert mail["customArgs"]["template"] == "payment_failed"
    assert "insufficient funds" in mail["text"]
    # The card was declined before the order was confirmed: the cart is still active.
    assert f"{live.settings.api_base_url}/api/cart" in mail["text"]
    cart = await http.get("/api/cart", headers=shopper.headers)
    assert cart.json()["id"] == shopper.cart_id


async def test_each_refund_email_shows_the_balance_after_that_refund(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    item = await product(http, staff, price=3000)
    shopper = await shopper_with_cart(http, [(item, 1)])
    order = await wait_for(http, shopper.headers, (await place(http, shopper))["id"])
    total = order["totals"]["total"]
    url = f"/api/admin/orders/{order['id']}/refunds"
    for amount, reason in ((1000, "dented"), (500, "late")):
        refunded = await http.post(url, headers=staff, json={"amount": amount, "reason": reason})
        assert refunded.status_code == 200, refunded.text

    sessions = create_session_factory(engine)
    subscriber = refund_email(_emails(live, sessions), live.settings)
    # Each email shows the balance as of its own refund, whenever it is sent.
    events = await _delivered(engine, order["id"], "payment.refunded", 2)
    assert [e.data["amount"] for e in events] == [1000, 500]
    for event in events:
        assert await handle_once(sessions, subscriber, event.id) is False
    mailbox = await _mailbox(http, shopper.user["email"], order["id"])
    first, second = [m for m in mailbox if m["subject"].startswith("Refund")]

    def money(minor: int) -> str:
        return f"{minor / 100:.2f} USD"

    assert first["subject"] == f"Refund of 10.00 USD for order {order['id']}"
    assert f"Paid: {money(total)}" in first["text"]
    assert f"Refunded so far: {money(1000)}" in first["text"]
    assert f"Remaining balance: {money(total - 1000)}" in first["text"]
    assert "Reason: dented" in first["text"]
    assert second["subject"] == f"Refund of 5.00 USD for order {order['id']}"
    assert f"Refunded so far: {money(1500)}" in second["text"]
    assert f"Remaining balance: {money(total - 1500)}" in second["text"]


async def test_fulfillment_order_ready_carries_the_priority(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    item = await product(http, staff, price=60_000)  # a big order: +20
    shopper = await shopper_with_cart(http, [(item, 1)])
    order = await wait_for(http, shopper.headers, (await place(http, shopper))["id"])
    assert order["status"] == "fulfillment_queued"
    [event] = await _events(engine, order["id"], "fulfillment.order_ready")
    expected = calculate_priority(
        ShippingMethod.STANDARD, order["totals"]["total"], 0, timedelta(0)
    )
    assert (event.data["priority"], event.data["priorityLevel"]) == (20, "normal")
    assert (event.data["priority"], event.data["priorityLevel"]) == (
        expected.score,
        expected.level,
    )
