"""Staff register, read, change, delete webhook endpoints and rotate their secrets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.factories import signed_up

URL = "https://hooks.example.com/shopweave"


async def create(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/admin/webhooks",
        json={"url": URL, "eventTypes": ["order.created"]} | body,
        headers=staff,
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    made.append(endpoint["id"])
    return endpoint


def assert_secret(secret: str) -> None:
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24


async def test_create_shows_the_secret_once_and_reads_never_do(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    endpoint = await create(
        client,
        staff,
        made,
        eventTypes=["order.created", "order.cancelled", "order.created"],
        description="ERP order sync",
    )
    assert endpoint["id"].startswith("whk_")
    assert endpoint["url"] == URL
    assert endpoint["eventTypes"] == ["order.created", "order.cancelled"]
    assert (endpoint["description"], endpoint["enabled"]) == ("ERP order sync", True)
    assert_secret(endpoint["secret"])

    read = await client.get(f"/api/admin/webhooks/{endpoint['id']}", headers=staff)
    assert read.status_code == 200, read.text
    assert read.json() == {k: v for k, v in endpoint.items() if k != "secret"}

    local = await create(client, staff, made, url="http://127.0.0.1:9000/h", eventTypes=["*"])
    assert local["eventTypes"] == ["*"]
    assert local["secret"] != endpoint["secret"]
    listed = await client.get("/api/admin/webhooks", params={"limit": 100}, headers=staff)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    ids = [i["id"] for i in items]
    assert ids.index(local["id"]) < ids.index(endpoint["id"])  # newest first
    assert all("secret" not in i for i in items)


async def test_patch_changes_only_what_is_sent_and_delete_removes(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    endpoint = await create(client, staff, made, description="before")
    path = f"/api/admin/webhooks/{endpoint['id']}"
    changed = await client.patch(path, json={"enabled": False, "eventTypes": ["*"]}, headers=staff)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["enabled"], body["eventTypes"]) == (False, ["*"])
    assert (body["url"], body["description"]) == (URL, "before")
    assert body["updatedAt"] > endpoint["updatedAt"]
    assert body["disabledReason"] == "disabled by staff"
    assert body["disabledAt"] is not None
    again = await client.patch(path, json={"enabled": True}, headers=staff)
    assert (again.json()["enabled"], again.json()["disabledAt"]) == (True, None)
    assert (again.json()["disabledReason"], again.json()["consecutiveFailures"]) == (None, 0)
    moved = await client.patch(
        path, json={"url": "http://localhost:8080/in", "description": "after"}, headers=staff
    )
    assert (moved.json()["url"], moved.json()["description"]) == (
        "http://localhost:8080/in",
        "after",
    )

    deleted = await client.delete(path, headers=staff)
    assert deleted.status_code == 204, deleted.text
    gone = await client.get(path, headers=staff)
    assert gone.status_code == 404
    assert gone.json()["code"] == "webhook_endpoint_not_found"


async def test_rotate_secret_replaces_it_and_keeps_the_old_one_for_a_while(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    endpoint = await create(client, staff, made)
    assert endpoint["previousSecretExpiresAt"] is None
    path = f"/api/admin/webhooks/{endpoint['id']}"
    before = datetime.now(UTC)
    rotated = await client.post(f"{path}/rotate-secret", headers=staff)
    assert rotated.status_code == 200, rotated.text
    assert_secret(rotated.json()["secret"])
    assert rotated.json()["secret"] != endpoint["secret"]
    assert rotated.json()["id"] == endpoint["id"]
    # No body: the old secret keeps signing for 24 h.
    grace = datetime.fromisoformat(rotated.json()["previousSecretExpiresAt"]) - before
    assert timedelta(hours=24) <= grace < timedelta(hours=24, minutes=1)
    read = await client.get(path, headers=staff)
    assert read.json()["previousSecretExpiresAt"] == rotated.json()["previousSecretExpiresAt"]

    hour = await client.post(
        f"{path}/rotate-secret", json={"expiresInSeconds": 3600}, headers=staff
    )
    grace = datetime.fromisoformat(hour.json()["previousSecretExpiresAt"]) - before
    assert timedelta(hours=1) <= grace < timedelta(hours=1, minutes=1)
    now = await client.post(f"{path}/rotate-secret", json={"expiresInSeconds": 0}, headers=staff)
    assert now.status_code == 200, now.text
    assert now.json()["previousSecretExpiresAt"] is None
    for bad in (-1, 7 * 24 * 3600 + 1, "60", True, 1.5):
        refused = await client.post(
            f"{path}/rotate-secret", json={"expiresInSeconds": bad}, headers=staff
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "validation_error"), bad


async def test_bad_input_is_a_problem_with_a_stable_code(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "http://hooks.example.com/x"}, "invalid_webhook_url"),
        ({"url": "ftp://localhost/x"}, "invalid_webhook_url"),
        ({"url": "https://user:pw@example.com/x"}, "invalid_webhook_url"),
        ({"url": "https://example.com:notaport/x"}, "invalid_webhook_url"),
        ({"url": "not a url"}, "invalid_webhook_url"),
        ({"eventTypes": ["order.exploded"]}, "unknown_event_type"),
        ({"eventTypes": ["system.relay_probe"]}, "unknown_event_type"),
        ({"eventTypes": ["*", "order.created"]}, "unknown_event_type"),
        ({"eventTypes": []}, "validation_error"),
        ({"enabled": 0}, "validation_error"),
    ]
    for body, code in cases:
        response = await client.post(
            "/api/admin/webhooks",
            json={"url": URL, "eventTypes": ["order.created"]} | body,
            headers=staff,
        )
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code, (body, response.text)

    endpoint = await create(client, staff, made)
    path = f"/api/admin/webhooks/{endpoint['id']}"
    bad = await client.patch(path, json={"eventTypes": ["nope"]}, headers=staff)
    assert (bad.status_code, bad.json()["code"]) == (422, "unknown_event_type")
    assert bad.json()["unknown"] == ["nope"]
    still = await client.get(path, headers=staff)
    assert still.json()["eventTypes"] == ["order.created"]


async def test_staff_only_and_unknown_ids(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    _, customer = await signed_up(client)
    endpoint = await create(client, staff, made)
    path = f"/api/admin/webhooks/{endpoint['id']}"
    for method, url in [
        ("GET", "/api/admin/webhooks"),
        ("POST", "/api/admin/webhooks"),
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("POST", f"{path}/rotate-secret"),
        ("POST", f"{path}/retry-failed"),
    ]:
        json: dict[str, Any] | None = (
            {"url": URL, "eventTypes": ["*"]} if method in ("POST", "PATCH") else None
        )
        response = await client.request(method, url, json=json, headers=customer)
        assert response.status_code == 403, (method, url, response.text)
        anonymous = await client.request(method, url, json=json)
        assert anonymous.status_code == 401, (method, url, anonymous.text)
    missing = "/api/admin/webhooks/whk_00000000000000000000000000"
    for method, url in [
        ("GET", missing),
        ("PATCH", missing),
        ("DELETE", missing),
        ("POST", f"{missing}/rotate-secret"),
        ("POST", f"{missing}/retry-failed"),
    ]:
        body: dict[str, Any] | None = {"enabled": False} if method == "PATCH" else None
        response = await client.request(method, url, json=body, headers=staff)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["code"] == "webhook_endpoint_not_found"


async def test_retry_failed_answers_what_it_sent_again_and_waits_for_re_enabling(
    client: httpx.AsyncClient, staff: dict[str, str], made: list[str]
) -> None:
    """The call's answer and refusal over HTTP (its sends: test_endpoint_health)."""
    endpoint = await create(client, staff, made)
    path = f"/api/admin/webhooks/{endpoint['id']}"
    nothing = await client.post(f"{path}/retry-failed", headers=staff)
    assert nothing.status_code == 202, nothing.text
    assert nothing.json() == {"retried": 0, "more": False}
    paused = await client.patch(path, json={"enabled": False}, headers=staff)
    assert paused.status_code == 200, paused.text
    refused = await client.post(f"{path}/retry-failed", headers=staff)
    assert (refused.status_code, refused.json()["code"]) == (409, "webhook_endpoint_disabled")
    assert refused.json()["disabledReason"] == "disabled by staff"
