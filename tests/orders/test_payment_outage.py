"""A Stripe outage during checkout, live (the Stripe sandbox's fault switches): an order
waits it out while its stock is held, for ``PAYMENT_AUTHORIZE_TIMEOUT_SECONDS``, its
timeline saying it waits for the payment provider. An outage shorter than that costs
nothing (the order is confirmed, charged once); a longer one fails the order cleanly.
Before, process-payment's three attempts (about 8 s against a Stripe answering 503) were
all an order had: a chaos run lost 11 orders to a 10-20 s outage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from core.settings import Settings
from temporal.clients.orders import workflow_id
from tests.live import LiveStack, live_stack
from tests.orders.helpers import (
    activity_runs,
    eventually,
    intents_for,
    place,
    product,
    shopper_with_cart,
    stock,
    wait_for,
)

BUDGET = 20.0
WAITING = "waiting for the payment provider"


@pytest.fixture(scope="module")
async def live(settings: Settings, temporal_client: Client) -> AsyncIterator[LiveStack]:
    """The live stack with a short authorise budget, so that the outage that outlasts it
    takes seconds, not the default five minutes."""
    short = settings.model_copy(update={"payment_authorize_timeout_seconds": BUDGET})
    async with live_stack(short, temporal_client) as running:
        yield running


async def rounds_failed(client: Client, order_id: str) -> int:
    """How many rounds of process-payment failed (each of three attempts) so far."""
    history = await client.get_workflow_handle(workflow_id(order_id)).fetch_history()
    return sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED for e in history.events)


def waits_for_the_provider(order: dict[str, Any]) -> bool:
    return any(WAITING in entry["message"] for entry in order["timeline"])


async def test_an_outage_shorter_than_the_budget_costs_the_order_nothing(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack
) -> None:
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    await http.put("/_sandbox/stripe/faults", json={"status": 503})
    try:
        placed = await place(http, shopper)

        # A whole round of attempts failed: what the order's only round was before.
        async def a_round_failed() -> bool:
            return await rounds_failed(live.client, placed["id"]) >= 1

        await eventually(a_round_failed, within=60)
    finally:
        await http.delete("/_sandbox/stripe/faults")
    order = await wait_for(http, shopper.headers, placed["id"], within=60)
    assert (order["status"], order["failureCode"]) == ("fulfillment_queued", None)
    # Charged once: one PaymentIntent (every round asked under the order's keys).
    [intent] = await intents_for(http, placed["id"])
    assert (intent["status"], intent["amount_received"]) == (
        "succeeded",
        order["totals"]["total"],
    )
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (2, 0)
    # Staff's timeline says it waited, once however many attempts found Stripe down; the
    # customer's leaves that out.
    ledger = (await http.get(f"/api/orders/{placed['id']}", headers=staff)).json()
    assert sum(WAITING in e["message"] for e in ledger["timeline"]) == 1
    assert not waits_for_the_provider(order), order["timeline"]


async def test_an_outage_longer_than_the_budget_fails_the_order_cleanly(
    http: httpx.AsyncClient, staff: dict[str, str], live: LiveStack
) -> None:
    """Stripe answering 503 to everything: process-payment tries again, round after
    round, until the budget is spent; the order then fails, undone, nothing charged."""
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    await http.put("/_sandbox/stripe/faults", json={"status": 503})
    try:
        placed = await place(http, shopper)
        order = await wait_for(http, shopper.headers, placed["id"], within=120)
    finally:
        await http.delete("/_sandbox/stripe/faults")
    assert (order["status"], order["failureCode"]) == ("failed", "payment_unavailable")
    ledger = (await http.get(f"/api/orders/{placed['id']}", headers=staff)).json()
    assert waits_for_the_provider(ledger), ledger["timeline"]
    level = await stock(http, staff, item["id"])
    assert (level["onHand"], level["reserved"]) == (3, 0)
    assert await intents_for(http, placed["id"]) == []  # nothing was ever created
    # More than the one round of three attempts it had before, and a bounded number.
    runs = await activity_runs(live.client, placed["id"])
    runs = [r for r in runs if r.activity == "payments.authorize"]
    assert len(runs) >= 2, runs
    assert all(r.attempt == 3 for r in runs), runs
