"""Outgoing webhooks on the real stack: real checkouts, the relay's ``webhooks``
subscriber, ``WebhookDeliveryWorkflow`` on the events queue, and a real HTTP receiver
that verifies every request with ``standardwebhooks.Webhook``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from temporalio.client import Client

from core.db import create_session_factory, transaction
from core.settings import Settings
from services.events.handlers.webhooks import webhooks_subscriber
from temporal.clients.connection import TemporalConnection
from temporal.clients.webhooks import WebhookWorkflows
from tests.factories import register as register_user
from tests.live import LiveStack, live_stack
from tests.orders.conftest import http, staff
from tests.orders.helpers import eventually, paid_order, provider_events
from tests.webhooks.receiver import Received, Receiver, receiver
from tests.webhooks.rows import order_created
from workflows.types.webhooks import SendOutcome, SendResult, webhook_workflow_id

__all__ = ["http", "staff"]


@pytest.fixture(scope="module")
async def live(settings: Settings, temporal_client: Client) -> AsyncIterator[LiveStack]:
    quick = settings.model_copy(
        update={
            "webhook_retry_initial_seconds": 0.2,
            "webhook_retry_max_interval_seconds": 1.0,
            "webhook_max_attempts": 3,
            "webhook_timeout_seconds": 10.0,
        }
    )
    async with live_stack(quick, temporal_client) as running:
        yield running


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as running:
        yield running


@pytest.fixture
async def made(http: httpx.AsyncClient, staff: dict[str, str]) -> AsyncIterator[list[str]]:
    ids: list[str] = []
    yield ids
    for endpoint_id in ids:
        await http.delete(f"/api/admin/webhooks/{endpoint_id}", headers=staff)


async def register(
    http: httpx.AsyncClient,
    staff: dict[str, str],
    made: list[str],
    url: str,
    types: list[str],
) -> dict[str, Any]:
    response = await http.post(
        "/api/admin/webhooks", json={"url": url, "eventTypes": types}, headers=staff
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    made.append(endpoint["id"])
    return endpoint


def verified(secret: str, received: Received) -> dict[str, Any]:
    """The payload, once ``standardwebhooks`` accepts the request's signature."""
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


def of_order(received: list[Received], order_id: str) -> list[Received]:
    return [r for r in received if r.json["data"].get("orderId") == order_id]


async def deliveries(
    http: httpx.AsyncClient, staff: dict[str, str], endpoint_id: str, **params: str
) -> list[dict[str, Any]]:
    response = await http.get(
        f"/api/admin/webhooks/{endpoint_id}/deliveries", headers=staff, params=params
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_an_order_reaches_the_endpoint_that_wants_it_signed_and_not_the_other(
    http: httpx.AsyncClient, staff: dict[str, str], made: list[str], hooks: Receiver
) -> None:
    wants = await register(http, staff, made, hooks.url("orders"), ["order.created"])
    other = await register(http, staff, made, hooks.url("returns"), ["return.requested"])
    _, order = await paid_order(http, staff)

    await eventually(lambda: _has(hooks, "orders", order["id"]))
    [received] = of_order(hooks.got("orders"), order["id"])
    payload = verified(wants["secret"], received)
    assert payload["type"] == "order.created"
    assert payload["data"]["orderId"] == order["id"]
    assert set(payload) == {"type", "timestamp", "data"}
    assert received.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret fails
        verified(other["secret"], received)

    async def recorded() -> bool:
        items = await deliveries(http, staff, wants["id"])
        return any(i["status"] == "delivered" for i in items)

    await eventually(recorded)
    [item] = [
        i
        for i in await deliveries(http, staff, wants["id"])
        if i["payload"]["data"].get("orderId") == order["id"]
    ]
    assert item["id"] == received.headers["webhook-id"]
    assert (item["eventType"], item["attempts"], item["lastStatusCode"]) == (
        "order.created",
        1,
        200,
    )
    assert [a["statusCode"] for a in item["attemptLog"]] == [200]
    assert item["attemptLog"][0]["succeeded"] is True
    # The other endpoint wants no order event: none was recorded for it, none sent. (It
    # may get other files' returns: the suite's tests share one database and relay.)
    assert {i["eventType"] for i in await deliveries(http, staff, other["id"])} <= {
        "return.requested"
    }
    assert {r.json["type"] for r in hooks.got("returns")} <= {"return.requested"}


async def test_a_refund_that_bounced_reaches_the_endpoint_staff_and_the_customer(
    engine: AsyncEngine,
    live: LiveStack,
    http: httpx.AsyncClient,
    staff: dict[str, str],
    made: list[str],
    hooks: Receiver,
) -> None:
    """A staff refund the card's bank sent back (``refund.failed`` from the sandbox): the
    relay takes ``payment.refund_failed`` to an endpoint that wants it, staff's alert, the
    customer's notification and email. Before, nothing was published: no one heard."""
    endpoint = await register(http, staff, made, hooks.url("bounced"), ["payment.refund_failed"])
    shopper, order = await paid_order(http, staff)
    refund = await http.post(
        f"/api/admin/orders/{order['id']}/refunds",
        headers=staff | {"Idempotency-Key": f"bounce-{order['id']}"},
        json={"amount": 1000, "reason": "dented"},
    )
    assert refund.status_code == 200, refund.text
    [made_refund] = await provider_events(engine, order["id"], "refunded")
    failed = await http.post(f"/_sandbox/stripe/refunds/{made_refund['refundId']}/fail")
    assert failed.status_code == 200, failed.text

    await eventually(lambda: _has(hooks, "bounced", order["id"]))
    [received] = of_order(hooks.got("bounced"), order["id"])
    payload = verified(endpoint["secret"], received)
    assert payload["type"] == "payment.refund_failed"
    assert {k: payload["data"][k] for k in ("refundId", "amount", "currency", "reason")} == {
        "refundId": made_refund["refundId"],
        "amount": 1000,
        "currency": "USD",
        "reason": "expired_or_canceled_card",
    }

    async def told() -> bool:
        kinds = await http.get("/api/notifications", headers=shopper.headers)
        return "refund_failed" in [n["kind"] for n in kinds.json()["items"]]

    await eventually(told)
    settings = live.settings
    to_staff = settings.fulfillment_alert_email or settings.inventory_alert_email

    async def emailed() -> bool:
        customer = await http.get("/_sandbox/mail/messages", params={"to": shopper.user["email"]})
        alerts = await http.get("/_sandbox/mail/messages", params={"to": to_staff})
        return any("did not reach you" in m["subject"] for m in customer.json()) and any(
            order["id"] in m["subject"] and "failed" in m["subject"] for m in alerts.json()
        )

    await eventually(emailed)


async def _has(hooks: Receiver, path: str, order_id: str, count: int = 1) -> bool:
    return len(of_order(hooks.got(path), order_id)) >= count


async def test_a_500_then_200_is_retried_with_the_same_webhook_id(
    http: httpx.AsyncClient, staff: dict[str, str], made: list[str], hooks: Receiver
) -> None:
    hooks.script["flaky"] = [500]
    endpoint = await register(http, staff, made, hooks.url("flaky"), ["order.created"])
    _, order = await paid_order(http, staff)

    await eventually(lambda: _has(hooks, "flaky", order["id"], 2))
    first, second = of_order(hooks.got("flaky"), order["id"])
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    verified(endpoint["secret"], first)
    verified(endpoint["secret"], second)

    async def delivered() -> bool:
        return any(
            i["status"] == "delivered" for i in await deliveries(http, staff, endpoint["id"])
        )

    await eventually(delivered)
    [item] = await deliveries(http, staff, endpoint["id"])
    assert item["attempts"] == 2
    assert [a["statusCode"] for a in item["attemptLog"]] == [500, 200]
    assert item["attemptLog"][0]["error"].startswith("HTTP 500")


async def test_a_400_fails_visibly_and_a_retry_sends_it_again(
    http: httpx.AsyncClient, staff: dict[str, str], made: list[str], hooks: Receiver
) -> None:
    hooks.script["strict"] = [400]
    endpoint = await register(http, staff, made, hooks.url("strict"), ["order.created"])
    _, order = await paid_order(http, staff)

    async def failed() -> bool:
        return bool(await deliveries(http, staff, endpoint["id"], status="failed"))

    await eventually(failed)
    [item] = await deliveries(http, staff, endpoint["id"], status="failed")
    assert (item["status"], item["attempts"], item["lastStatusCode"]) == ("failed", 1, 400)
    assert item["lastError"].startswith("webhook_rejected: HTTP 400")
    assert item["finishedAt"] is not None
    assert len(of_order(hooks.got("strict"), order["id"])) == 1  # a 400 is not retried
    assert await deliveries(http, staff, endpoint["id"], status="delivered") == []

    retried = await http.post(f"/api/admin/webhooks/deliveries/{item['id']}/retry", headers=staff)
    assert retried.status_code == 202, retried.text
    assert (retried.json()["status"], retried.json()["generation"]) == ("pending", 1)

    await eventually(lambda: _has(hooks, "strict", order["id"], 2))
    first, again = of_order(hooks.got("strict"), order["id"])
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == item["id"]
    verified(endpoint["secret"], again)

    async def delivered() -> bool:
        return bool(await deliveries(http, staff, endpoint["id"], status="delivered"))

    await eventually(delivered)
    [done] = await deliveries(http, staff, endpoint["id"])
    assert [a["statusCode"] for a in done["attemptLog"]] == [400, 200]
    twice = await http.post(f"/api/admin/webhooks/deliveries/{item['id']}/retry", headers=staff)
    assert (twice.status_code, twice.json()["code"]) == (409, "webhook_delivery_not_failed")
    missing = await http.post("/api/admin/webhooks/deliveries/msg_nope/retry", headers=staff)
    assert (missing.status_code, missing.json()["code"]) == (404, "webhook_delivery_not_found")


async def test_an_endpoint_s_failed_deliveries_are_sent_again_in_one_call(
    http: httpx.AsyncClient, staff: dict[str, str], made: list[str], hooks: Receiver
) -> None:
    """``retry-failed`` starts each failed delivery's new run after its commit: the
    endpoint gets it again (same ``webhook-id``) and it ends delivered."""
    hooks.script["outage"] = [400]
    endpoint = await register(http, staff, made, hooks.url("outage"), ["order.created"])
    _, order = await paid_order(http, staff)

    async def failed() -> bool:
        return bool(await deliveries(http, staff, endpoint["id"], status="failed"))

    await eventually(failed)
    [item] = await deliveries(http, staff, endpoint["id"], status="failed")
    retried = await http.post(f"/api/admin/webhooks/{endpoint['id']}/retry-failed", headers=staff)
    assert retried.status_code == 202, retried.text
    assert retried.json() == {"retried": 1, "more": False}

    async def delivered() -> bool:
        return bool(await deliveries(http, staff, endpoint["id"], status="delivered"))

    await eventually(delivered)
    first, again = of_order(hooks.got("outage"), order["id"])
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == item["id"]


async def test_a_slow_endpoint_does_not_hold_back_another(
    http: httpx.AsyncClient, staff: dict[str, str], made: list[str], hooks: Receiver
) -> None:
    hooks.delay["slow"] = 6.0
    slow = await register(http, staff, made, hooks.url("slow"), ["order.created"])
    await register(http, staff, made, hooks.url("fast"), ["order.created"])
    _, first = await paid_order(http, staff)
    _, second = await paid_order(http, staff)

    await eventually(lambda: _has(hooks, "fast", first["id"]), within=6)
    await eventually(lambda: _has(hooks, "fast", second["id"]), within=6)
    # Both reached the fast endpoint while the slow one has not answered its first.
    pending = await deliveries(http, staff, slow["id"])
    assert len(pending) == 2
    assert all(i["status"] == "pending" and i["attempts"] == 0 for i in pending)


def of_user(received: list[Received], user_id: str) -> list[Received]:
    return [r for r in received if r.json["data"].get("userId") == user_id]


async def test_a_rotated_secret_signs_beside_the_new_one_until_it_expires(
    http: httpx.AsyncClient, staff: dict[str, str], made: list[str], hooks: Receiver
) -> None:
    first = await register(http, staff, made, hooks.url("rotating"), ["user.created"])
    path = f"/api/admin/webhooks/{first['id']}/rotate-secret"
    rotated = await http.post(path, json={"expiresInSeconds": 600}, headers=staff)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]

    # During the grace: two signatures, and receivers with either secret accept.
    user = await register_user(http)
    await eventually(lambda: _got_user(hooks, "rotating", user["id"]))
    [during] = of_user(hooks.got("rotating"), user["id"])
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verified(first["secret"], during)["data"]["userId"] == user["id"]
    assert verified(second, during)["data"]["userId"] == user["id"]

    # Rotated again with a second of grace: once it is over, only the newest signs.
    again = await http.post(path, json={"expiresInSeconds": 1}, headers=staff)
    third = again.json()["secret"]
    expires = datetime.fromisoformat(again.json()["previousSecretExpiresAt"])
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    later = await register_user(http)
    await eventually(lambda: _got_user(hooks, "rotating", later["id"]))
    [after] = of_user(hooks.got("rotating"), later["id"])
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verified(third, after)["data"]["userId"] == later["id"]
    for old in (first["secret"], second):
        with pytest.raises(WebhookVerificationError):
            verified(old, after)


async def _got_user(hooks: Receiver, path: str, user_id: str) -> bool:
    return bool(of_user(hooks.got(path), user_id))


async def test_a_delivery_committed_after_its_workflow_gave_up_is_sent_by_a_new_run(
    engine: AsyncEngine,
    live: LiveStack,
    http: httpx.AsyncClient,
    staff: dict[str, str],
    made: list[str],
    hooks: Receiver,
) -> None:
    # The webhooks subscriber starts each endpoint's workflow inside the relay's delivery
    # transaction. When that transaction does not commit (a later statement fails, its
    # worker dies), the workflow finds no delivery, retries, and gives up. The relay's
    # later attempt (or staff's replay of the dead letter) commits the delivery: the same
    # workflow id is then a closed run, and must not count as the delivery's start.
    endpoint = await register(http, staff, made, hooks.url("late"), ["order.created"])
    subscriber = webhooks_subscriber(
        WebhookWorkflows(TemporalConnection.of(live.client), live.settings)
    )
    event = order_created()
    order_id = event.aggregate_id
    sessions = create_session_factory(engine)
    async with sessions() as session:
        await subscriber.handle(event, session)
        await session.rollback()  # the delivery's transaction did not commit
    workflow_id = webhook_workflow_id(event.id, endpoint["id"], 0)
    gave_up = await live.client.get_workflow_handle(workflow_id, result_type=SendResult).result()
    assert gave_up.outcome is SendOutcome.SKIPPED  # no delivery to send, none to fail

    async with transaction(sessions) as session:  # the relay's next attempt commits
        await subscriber.handle(event, session)

    sent = await live.client.get_workflow_handle(workflow_id, result_type=SendResult).result()
    assert sent.outcome is SendOutcome.DELIVERED
    [received] = of_order(hooks.got("late"), order_id)
    verified(endpoint["secret"], received)
    [item] = [
        i
        for i in await deliveries(http, staff, endpoint["id"])
        if i["payload"]["data"].get("orderId") == order_id
    ]
    assert (item["status"], item["attempts"]) == ("delivered", 1)
