"""Checkout end to end: the API, OrderWorkflow on real workers, the Stripe sandbox."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from activities.accounts import AccountActivities, ContactInput
from core.db import create_session_factory
from models.payments import Payment, PaymentEvent
from temporal.clients.carts import workflow_id as cart_reminder_id
from temporal.clients.orders import workflow_id
from tests.factories import PASSWORD
from tests.live import LiveStack
from tests.orders.helpers import (
    analytics_for,
    eventually,
    intents_for,
    outbox_types,
    place,
    product,
    shopper_with_cart,
    stock,
    wait_for,
)
from workflows.orders import OrderWorkflow


async def test_an_order_is_priced_reserved_paid_captured_and_queued(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    item = await product(http, staff, price=2500, stock=10)
    shopper = await shopper_with_cart(http, [(item, 2)])
    placed = await place(http, shopper)
    assert placed["status"] == "pending"
    assert placed["id"].startswith("ord_")

    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order
    assert order["failureCode"] is None
    assert [(i["productId"], i["quantity"], i["unitPrice"]) for i in order["items"]] == [
        (item["id"], 2, 2500)
    ]
    assert order["totals"]["subtotal"] == 5000
    assert order["payment"]["status"] == "captured"
    assert order["payment"]["amountCaptured"] == order["totals"]["total"]
    statuses = [e["status"] for e in order["timeline"]]
    for expected in (
        "pending",
        "reserved",
        "payment_authorized",
        "confirmed",
        "fulfillment_queued",
    ):
        assert expected in statuses

    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (8, 0)
    intents = await intents_for(http, placed["id"])
    assert len(intents) == 1
    assert intents[0]["status"] == "succeeded"
    assert intents[0]["capture_method"] == "manual"
    assert intents[0]["amount_received"] == order["totals"]["total"]

    assert await outbox_types(engine, placed["id"]) == ["order.created", "fulfillment.order_ready"]
    assert await analytics_for(engine, placed["id"]) == [
        "checkout_start",
        "payment_start",
        "order_complete",
    ]
    mail = await http.get("/_sandbox/mail/messages", params={"to": shopper.user["email"]})
    subjects = [m["subject"] for m in mail.json()]
    assert any(placed["id"] in s and "confirmed" in s for s in subjects), subjects

    handle = live.client.get_workflow_handle(workflow_id(placed["id"]))
    view = await handle.query(OrderWorkflow.status)
    assert view.status == "fulfillment_queued"
    # What an operator sees (`temporal workflow query --type status`) uses the API's names.
    raw = await handle.query("status", result_type=dict)
    assert {"orderId", "failureCode", "nextActionUrl"} <= set(raw), raw
    description = await handle.describe()
    attributes = description.typed_search_attributes
    assert any(p.key.name == "OrderStatus" and p.value == "fulfillment_queued" for p in attributes)
    cart = await http.get("/api/cart", headers=shopper.headers)
    assert cart.status_code == 404  # the cart was checked out
    # ... and its abandoned-cart reminder, not signalled (a workflow task per order),
    # learns at its deadline that the cart was checked out, and sends nothing.
    reminder = await live.client.get_workflow_handle(cart_reminder_id(shopper.cart_id)).describe()
    assert reminder.status == WorkflowExecutionStatus.RUNNING
    accounts = AccountActivities(create_session_factory(engine))
    contact = await accounts.contact(
        ContactInput(user_id=shopper.user["id"], cart_id=shopper.cart_id)
    )
    assert (contact.active, contact.cart_active) == (True, False)


async def test_the_webhooks_of_a_card_authorised_at_once_signal_no_workflow(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack, engine: AsyncEngine
) -> None:
    """Only an order waiting for the customer's 3-D Secure hears of webhooks: the others
    learn from the provider's answer, and a signal would cost each a workflow task."""
    item = await product(http, staff, stock=2)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper)
    order = await wait_for(http, shopper.headers, placed["id"])
    assert order["status"] == "fulfillment_queued", order

    async def webhooks_received() -> bool:
        async with engine.connect() as conn:
            types = set(
                (
                    await conn.execute(
                        select(PaymentEvent.type)
                        .join(Payment, col(Payment.id) == col(PaymentEvent.payment_id))
                        .where(Payment.order_id == placed["id"])
                    )
                ).scalars()
            )
        return {"payment_intent.amount_capturable_updated", "payment_intent.succeeded"} <= types

    await eventually(webhooks_received)
    handle = live.client.get_workflow_handle(workflow_id(placed["id"]))
    await handle.result()
    history = await handle.fetch_history()
    signals = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == []


async def test_a_cart_is_not_changed_while_its_order_is_being_placed(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """While the order waits for 3-D Secure its cart is still open, and create-order will
    close it: a line added then was neither ordered nor kept (the cart closed with it).
    The cart answers 409 ``cart_in_checkout`` instead, until the order is settled."""
    item, other = await product(http, staff, stock=5), await product(http, staff, stock=5)
    shopper = await shopper_with_cart(http, [(item, 1)])
    placed = await place(http, shopper, token="pm_card_authenticationRequired")
    await wait_for(http, shopper.headers, placed["id"], {"requires_action"})

    changes = [
        http.post("/api/cart/items", headers=shopper.headers, json={"productId": other["id"]}),
        http.patch(f"/api/cart/items/{item['id']}", headers=shopper.headers, json={"quantity": 3}),
        http.delete(f"/api/cart/items/{item['id']}", headers=shopper.headers),
        http.delete("/api/cart", headers=shopper.headers),
    ]
    for change in changes:
        refused = await change
        assert refused.status_code == 409, refused.text
        assert (refused.json()["code"], refused.json()["orderId"]) == (
            "cart_in_checkout",
            placed["id"],
        )
    # Signing in again with a guest cart: it is not merged into the cart in checkout.
    guest = await http.post("/api/cart/items", json={"productId": other["id"]})
    guest_token = guest.json()["cartToken"]
    signed_in = await http.post(
        "/api/auth/login",
        headers={"X-Cart-Token": guest_token},
        json={"email": shopper.user["email"], "password": PASSWORD},
    )
    assert signed_in.status_code == 200, signed_in.text
    cart = (await http.get("/api/cart", headers=shopper.headers)).json()
    assert [(i["productId"], i["quantity"]) for i in cart["items"]] == [(item["id"], 1)]
    kept = await http.get("/api/cart", headers={"X-Cart-Token": guest_token})
    assert [i["productId"] for i in kept.json()["items"]] == [other["id"]], kept.text

    cancelled = await http.post(f"/api/orders/{placed['id']}/cancel", headers=shopper.headers)
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    added = await http.post(
        "/api/cart/items", headers=shopper.headers, json={"productId": other["id"]}
    )
    assert added.status_code == 201, added.text
