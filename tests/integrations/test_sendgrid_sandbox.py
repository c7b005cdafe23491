"""The SendGrid sandbox answers like SendGrid: the real SDK against it, and raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from temporalio.client import Client

from core.settings import Settings
from integrations.email.sender import (
    SANDBOX_API_KEY,
    EmailProviderUnavailable,
    OutgoingEmail,
    SendGridSender,
)
from integrations.sandbox.sendgrid import LATENCY_KEY, SandboxFaults
from tests.factories import unique_email
from tests.live import live_api
from tests.stack import production_settings

SEND = "/_sandbox/sendgrid/v3/mail/send"
KEY = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


def _mail(**overrides: Any) -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "from": {"email": "shop@example.com", "name": "Shop"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
    } | overrides


async def test_a_bad_key_is_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-sendgrid-key"}):
        response = await client.post(SEND, json=_mail(), headers=headers)
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"].startswith("The provided authorization")


@pytest.mark.parametrize(
    ("mail", "field"),
    [
        (_mail(personalizations=[]), "personalizations"),
        (_mail(personalizations=[{"to": []}]), "personalizations.0.to"),
        (_mail(personalizations=[{"to": [{"email": "nope"}]}]), "personalizations.0.to.0.email"),
        ({k: v for k, v in _mail().items() if k != "from"}, "from"),
        ({k: v for k, v in _mail().items() if k != "subject"}, "subject"),
        (_mail(content=[]), "content"),
        (_mail(content=[{"type": "text/plain", "value": ""}]), "content"),
    ],
)
async def test_a_malformed_message_is_400_with_sendgrid_errors(
    client: httpx.AsyncClient, mail: dict[str, Any], field: str
) -> None:
    response = await client.post(SEND, json=mail, headers=KEY)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in {e["field"] for e in errors}
    assert all(set(e) == {"message", "field", "help"} for e in errors)


async def test_a_template_stands_in_for_subject_and_content(client: httpx.AsyncClient) -> None:
    mail = {k: v for k, v in _mail().items() if k not in ("subject", "content")}
    response = await client.post(SEND, json=mail | {"template_id": "d-123"}, headers=KEY)
    assert response.status_code == 202


async def test_a_good_message_is_202_and_lands_in_the_mailbox(client: httpx.AsyncClient) -> None:
    to = unique_email("box")
    mail = _mail(personalizations=[{"to": [{"email": to.upper()}]}], custom_args={"k": "v"})
    response = await client.post(SEND, json=mail, headers=KEY)
    assert response.status_code == 202
    message_id = response.headers["x-message-id"]
    box = (await client.get("/_sandbox/mail/messages", params={"to": to})).json()
    assert [m["id"] for m in box] == [message_id]
    assert box[0]["customArgs"] == {"k": "v"}
    page = await client.get("/_sandbox/mail", params={"to": to})
    assert page.status_code == 200
    assert "Hello" in page.text
    found = await client.get(
        "/_sandbox/sendgrid/v3/messages",
        params={"query": 'unique_args[\'k\']="v" AND to_email="' + to + '"'},
        headers=KEY,
    )
    assert [m["msg_id"] for m in found.json()["messages"]] == [message_id]


async def test_the_sandbox_is_not_mounted_in_production(settings: Settings) -> None:
    from api.app import create_app

    app = create_app(production_settings(settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.post(SEND, json=_mail(), headers=KEY)).status_code == 404
            assert (await http.get("/_sandbox/mail")).status_code == 404


@pytest.fixture(scope="module")
async def sdk_sender(settings: Settings, temporal_client: Client) -> AsyncIterator[SendGridSender]:
    from cli.stack.process import free_port

    live = Settings.model_validate(settings.model_dump() | {"shop_api_port": free_port()})
    async with live_api(live):
        yield SendGridSender(SANDBOX_API_KEY, live.resolved_sendgrid_base_url)


async def test_the_real_sdk_sends_and_finds_messages(sdk_sender: SendGridSender) -> None:
    to = unique_email("sdk")
    message_id = await sdk_sender.send(
        OutgoingEmail(
            to=to,
            from_="Shopweave <no-reply@shopweave.example>",
            subject="Via the SDK",
            html="<p>html</p>",
            text="text",
            custom_args={"message_key": f"key-{to}"},
            categories=("test",),
        )
    )
    assert message_id
    assert await sdk_sender.find_accepted("message_key", f"key-{to}") == message_id
    assert await sdk_sender.find_accepted("message_key", "never-sent") is None


async def test_the_sdk_reports_an_outage_as_retryable(
    sdk_sender: SendGridSender, settings: Settings
) -> None:
    to = unique_email("down")
    base = sdk_sender.base_url.removesuffix("/_sandbox/sendgrid")
    async with httpx.AsyncClient(base_url=base) as http:
        await http.put("/_sandbox/sendgrid/faults", json={"mode": "down", "count": 1, "to": to})
    with pytest.raises(EmailProviderUnavailable, match="503") as caught:
        await sdk_sender.send(
            OutgoingEmail(to=to, from_="a@example.com", subject="s", html="h", text="t")
        )
    assert caught.value.retryable


async def test_a_failure_rate_affects_about_that_share_of_sends(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    to = unique_email("rate")
    await SandboxFaults(redis).set("down", None, to=to, rate=0.3)
    try:
        statuses = [
            (
                await client.post(
                    SEND, json=_mail(personalizations=[{"to": [{"email": to}]}]), headers=KEY
                )
            ).status_code
            for _ in range(200)
        ]
    finally:
        await SandboxFaults(redis).clear()
    failed = statuses.count(503)
    assert set(statuses) == {202, 503}
    # 200 draws at 30 %: 60 expected; outside 30..90 is a one-in-a-million event.
    assert 30 <= failed <= 90, failed


async def test_the_failure_rate_is_validated(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/_sandbox/sendgrid/faults", json={"mode": "down", "failureRate": 1.5}
    )
    assert response.status_code == 422


# The other sandboxes' fault switches (HubSpot's, EasyPost's, Stripe's), on SendGrid's.


async def _send_to(client: httpx.AsyncClient, to: str) -> httpx.Response:
    return await client.post(
        SEND, json=_mail(personalizations=[{"to": [{"email": to}]}]), headers=KEY
    )


async def _stored(client: httpx.AsyncClient, to: str) -> int:
    return len((await client.get("/_sandbox/mail/messages", params={"to": to})).json())


@pytest.mark.parametrize(
    ("switches", "answered", "stored"),
    [
        ({"status": 429}, 429, 0),  # status alone: every call, nothing stored
        ({"failureRate": 1.0}, 500, 0),  # failing calls answer 500 by default
        ({"failureRate": 1.0, "status": 502}, 502, 0),
        ({"lostAnswerRate": 1.0}, 500, 1),  # stored, then the answer is lost
    ],
)
async def test_the_fault_switches_are_the_other_sandboxes(
    client: httpx.AsyncClient, switches: dict[str, Any], answered: int, stored: int
) -> None:
    to = unique_email("switch")
    put = await client.put("/_sandbox/sendgrid/faults", json=switches | {"to": to})
    assert put.status_code == 204, put.text
    try:
        response = await _send_to(client, to)
        assert response.status_code == answered, response.text
        assert await _stored(client, to) == stored
        # Others' sends pass: the switch names `to`.
        assert (await _send_to(client, unique_email("other"))).status_code == 202
    finally:
        await client.delete("/_sandbox/sendgrid/faults")
    assert (await _send_to(client, to)).status_code == 202


async def test_the_latency_switch_is_kept_until_cleared(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    put = await client.put("/_sandbox/sendgrid/faults", json={"latencyMs": 20})
    assert put.status_code == 204, put.text
    try:
        assert await redis.get(LATENCY_KEY) in ("20", b"20")
        assert (await _send_to(client, unique_email("slow"))).status_code == 202
    finally:
        await client.delete("/_sandbox/sendgrid/faults")
    assert await redis.get(LATENCY_KEY) is None


async def test_a_mode_is_not_given_with_the_switches(client: httpx.AsyncClient) -> None:
    response = await client.put("/_sandbox/sendgrid/faults", json={"mode": "down", "status": 429})
    assert response.status_code == 422, response.text
