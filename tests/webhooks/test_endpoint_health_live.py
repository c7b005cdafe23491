"""A failing endpoint on the real stack: sign-ups publish ``user.created``, the relay's
``webhooks`` subscriber records deliveries, ``WebhookDeliveryWorkflow`` sends them to a
real receiver that refuses them, ``webhooks.give_up`` counts them until the endpoint is
disabled, and ``webhook_disabled_alert`` emails staff through the SendGrid sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from core.settings import Settings
from tests.factories import register as register_user
from tests.factories import unique_email
from tests.live import LiveStack, live_stack
from tests.orders.conftest import http, staff
from tests.orders.helpers import eventually
from tests.webhooks.receiver import Receiver, receiver
from tests.webhooks.test_delivery_live import made, register

__all__ = ["http", "made", "staff"]

ALERTS = unique_email("webhook-alerts")


@pytest.fixture(scope="module")
async def live(settings: Settings, temporal_client: Client) -> AsyncIterator[LiveStack]:
    quick = settings.model_copy(
        update={
            "webhook_retry_initial_seconds": 0.2,
            "webhook_retry_max_interval_seconds": 1.0,
            "webhook_max_attempts": 2,
            "webhook_disable_after_failures": 2,
            "webhook_disable_after_seconds": 2.0,
            "webhook_alert_email": ALERTS,
        }
    )
    async with live_stack(quick, temporal_client) as running:
        yield running


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as running:
        yield running


async def _endpoint(http: httpx.AsyncClient, staff: dict[str, str], id: str) -> dict[str, Any]:
    response = await http.get(f"/api/admin/webhooks/{id}", headers=staff)
    assert response.status_code == 200, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def _deliveries_of(
    http: httpx.AsyncClient, staff: dict[str, str], endpoint_id: str, user_id: str
) -> list[dict[str, Any]]:
    response = await http.get(
        f"/api/admin/webhooks/{endpoint_id}/deliveries", params={"limit": 100}, headers=staff
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return [i for i in items if i["payload"]["data"].get("userId") == user_id]


async def test_an_endpoint_failing_too_long_is_disabled_staff_told_and_re_enabled(
    http: httpx.AsyncClient,
    staff: dict[str, str],
    made: list[str],
    hooks: Receiver,
    settings: Settings,
) -> None:
    # Every delivery refused for good (a 410: one attempt each).
    hooks.script["down"] = [410] * 1000
    down = await register(http, staff, made, hooks.url("down"), ["user.created"])
    await register(http, staff, made, hooks.url("control"), ["user.created"])

    async def failed(user_id: str) -> bool:
        items = await _deliveries_of(http, staff, down["id"], user_id)
        return any(i["status"] == "failed" for i in items)

    async def disabled() -> bool:
        return (await _endpoint(http, staff, down["id"]))["enabled"] is False

    async def failed_or_disabled(user_id: str) -> bool:
        return await failed(user_id) or await disabled()

    # Sign-ups, each refused, until the endpoint is disabled: at least two failures, the
    # first at least two seconds before the last. (In the parallel suite other files'
    # sign-ups reach this endpoint too, and only hasten it.)
    for _ in range(40):
        user = await register_user(http)
        await eventually(partial(failed_or_disabled, user["id"]))
        if await disabled():
            break
        await asyncio.sleep(0.5)
    endpoint = await _endpoint(http, staff, down["id"])
    assert endpoint["enabled"] is False
    assert endpoint["consecutiveFailures"] >= 2
    since = datetime.fromisoformat(endpoint["failingSince"])
    disabled_at = datetime.fromisoformat(endpoint["disabledAt"])
    assert disabled_at - since >= timedelta(seconds=2)
    assert endpoint["disabledReason"] == (
        f"{endpoint['consecutiveFailures']} consecutive failed deliveries since {since.isoformat()}"
    )

    # Staff are told once. Which relay sends it is any live stack's (the suite runs
    # several on one database), so it is the address of that stack's settings: this
    # file's WEBHOOK_ALERT_EMAIL, or INVENTORY_ALERT_EMAIL of a stack without one
    # (tests/webhooks/test_endpoint_health.py checks the address itself).
    subject = f"Webhook endpoint disabled: {down['url']}"

    async def alerts() -> list[dict[str, Any]]:
        found = []
        for to in (ALERTS, settings.inventory_alert_email):
            response = await http.get("/_sandbox/mail/messages", params={"to": to})
            assert response.status_code == 200, response.text
            found += [m for m in response.json() if m["subject"] == subject]
        return found

    async def alerted() -> bool:
        return bool(await alerts())

    await eventually(alerted)
    [mail] = await alerts()
    assert f"Reason: {endpoint['disabledReason']}" in mail["text"]
    assert f"/api/admin/webhooks/{down['id']}" in mail["text"]

    # Disabled: a new sign-up reaches the control endpoint; this one gets nothing, but
    # the event is kept for it as a skipped delivery (before: no row, lost for good).
    third = await register_user(http)
    await eventually(lambda: _received(hooks, "control", third["id"]))
    [skipped] = await _deliveries_of(http, staff, down["id"], third["id"])
    assert (skipped["status"], skipped["attempts"], skipped["attemptLog"]) == ("skipped", 0, [])
    assert skipped["lastError"].startswith("endpoint_disabled: ")
    listed = await http.get(
        f"/api/admin/webhooks/{down['id']}/deliveries",
        params={"status": "skipped", "limit": 100},
        headers=staff,
    )
    assert listed.status_code == 200, listed.text
    assert skipped["id"] in [i["id"] for i in listed.json()["items"]]
    assert not _sent(hooks, "down", third["id"])

    # Re-enabled: the count starts again; the endpoint, back up, recovers what it missed.
    enabled = await http.patch(
        f"/api/admin/webhooks/{down['id']}", json={"enabled": True}, headers=staff
    )
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["enabled"], enabled.json()["consecutiveFailures"]) == (True, 0)
    assert (enabled.json()["disabledAt"], enabled.json()["disabledReason"]) == (None, None)
    hooks.script["down"] = []
    more = True
    while more:
        retried = await http.post(f"/api/admin/webhooks/{down['id']}/retry-failed", headers=staff)
        assert retried.status_code == 202, retried.text
        more = retried.json()["more"]

    async def recovered() -> bool:
        [item] = await _deliveries_of(http, staff, down["id"], third["id"])
        return bool(item["status"] == "delivered")

    await eventually(recovered)
    again = await http.post(f"/api/admin/webhooks/{down['id']}/retry-failed", headers=staff)
    assert again.status_code == 202, again.text
    [item] = await _deliveries_of(http, staff, down["id"], third["id"])
    assert (item["id"], item["status"], item["generation"]) == (skipped["id"], "delivered", 1)
    # Sent once, with the delivery's own id as webhook-id: a receiver deduplicates on it.
    [got] = [r for r in hooks.got("down") if r.json["data"].get("userId") == third["id"]]
    assert got.headers["webhook-id"] == skipped["id"]

    # And deliveries resume.
    fourth = await register_user(http)
    await eventually(lambda: _received(hooks, "down", fourth["id"]))


def _sent(hooks: Receiver, path: str, user_id: str) -> bool:
    return any(r.json["data"].get("userId") == user_id for r in hooks.got(path))


async def _received(hooks: Receiver, path: str, user_id: str) -> bool:
    return _sent(hooks, path, user_id)
