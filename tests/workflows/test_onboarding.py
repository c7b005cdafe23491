"""The welcome email: durable, exactly once, and patient with outages.

These run the API over real HTTP (the SendGrid SDK must reach the sandbox) and real
workers on the Temporal dev server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.client import WorkflowExecutionStatus

from cli.stack.process import free_port
from core.db import create_session_factory
from models.email import EmailMessage
from models.workflow_starts import WorkflowStart
from services.users import erased_email
from temporal.clients.onboarding import workflow_id
from temporal.clients.starts import relay_pending
from tests.factories import PASSWORD, bearer, login, unique_email
from tests.live import LiveStack


@pytest.fixture
async def http(live: LiveStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=20) as client:
        yield client
        await client.delete("/_sandbox/sendgrid/faults")


async def _register(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    response = await http.post(
        "/api/users", json={"email": email, "password": PASSWORD, "name": "Welcome Tester"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _mailbox(http: httpx.AsyncClient, email: str) -> list[dict[str, Any]]:
    response = await http.get("/_sandbox/mail/messages", params={"to": email})
    assert response.status_code == 200
    messages: list[dict[str, Any]] = response.json()
    return messages


async def _ledger_row(engine: AsyncEngine, user_id: str) -> EmailMessage | None:
    async with create_session_factory(engine)() as session:
        result = await session.exec(
            select(EmailMessage).where(EmailMessage.idempotency_key == f"welcome:{user_id}")
        )
        return result.first()


async def _ledger(engine: AsyncEngine, user_id: str) -> EmailMessage:
    row = await _ledger_row(engine, user_id)
    assert row is not None, f"no email_messages row for {user_id}"
    return row


async def test_the_welcome_email_arrives_once(
    http: httpx.AsyncClient, live: LiveStack, engine: AsyncEngine
) -> None:
    email = unique_email("welcome")
    user = await _register(http, email)
    handle = live.client.get_workflow_handle(workflow_id(user["id"]))
    result = await asyncio.wait_for(handle.result(), 30)
    assert result["already_sent"] is False
    messages = await _mailbox(http, email)
    assert len(messages) == 1
    message = messages[0]
    assert message["subject"] == "Welcome to Shopweave, Welcome Tester"
    assert "Welcome Tester" in message["text"]
    assert email in message["html"]
    assert message["customArgs"]["template"] == "welcome"
    row = await _ledger(engine, user["id"])
    assert row.status == "sent"
    assert row.provider_message_id == message["id"]
    assert row.attempts == 1
    # Written to the address and name read when it was sent: the run's history (the
    # start's input, the step's input and answer) holds neither, so an erasure leaves
    # none in Temporal. Before, the start's input and the step's carried both.
    history = await handle.fetch_history()
    for personal in (email, "Welcome Tester"):
        assert [
            e.event_id for e in history.events if personal.encode() in e.SerializeToString()
        ] == []


async def test_a_send_that_failed_after_the_provider_took_it_is_not_repeated(
    http: httpx.AsyncClient, live: LiveStack, engine: AsyncEngine
) -> None:
    email = unique_email("lostanswer")
    # Aimed at this test's address: workers may be sending other tests' emails too.
    fault = await http.put(
        "/_sandbox/sendgrid/faults", json={"mode": "accept_then_fail", "count": 1, "to": email}
    )
    assert fault.status_code == 204
    user = await _register(http, email)
    await asyncio.wait_for(live.client.get_workflow_handle(workflow_id(user["id"])).result(), 30)
    messages = await _mailbox(http, email)
    assert len(messages) == 1, messages
    row = await _ledger(engine, user["id"])
    assert row.status == "sent"
    assert row.attempts == 2  # the failed attempt, then the one that found the message
    assert row.provider_message_id == messages[0]["id"]


async def test_registration_succeeds_while_the_provider_is_down_and_mail_follows(
    http: httpx.AsyncClient, live: LiveStack, engine: AsyncEngine
) -> None:
    email = unique_email("outage")
    down = await http.put("/_sandbox/sendgrid/faults", json={"mode": "down", "to": email})
    assert down.status_code == 204
    user = await _register(http, email)
    handle = live.client.get_workflow_handle(workflow_id(user["id"]))
    # Let it fail a few times against the outage.
    row = None
    for _ in range(150):
        row = await _ledger_row(engine, user["id"])
        if row is not None and row.attempts >= 2:
            break
        await asyncio.sleep(0.1)
    assert row is not None
    assert row.attempts >= 2
    assert row.status != "sent"
    assert "503" in (row.last_error or "")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await _mailbox(http, email) == []

    assert (await http.delete("/_sandbox/sendgrid/faults")).status_code == 204
    await asyncio.wait_for(handle.result(), 30)
    assert len(await _mailbox(http, email)) == 1
    assert (await _ledger(engine, user["id"])).status == "sent"


async def test_an_account_erased_before_its_welcome_went_is_not_written_to(
    http: httpx.AsyncClient, live: LiveStack, engine: AsyncEngine
) -> None:
    """The welcome is retried while the provider is down; the account is deleted
    meanwhile: when the provider is back, nothing goes to the old address or the erased
    one (before, the retry sent the welcome to the address given at sign-up)."""
    email = unique_email("erased")
    down = await http.put("/_sandbox/sendgrid/faults", json={"mode": "down", "to": email})
    assert down.status_code == 204
    user = await _register(http, email)
    handle = live.client.get_workflow_handle(workflow_id(user["id"]))
    row = None
    for _ in range(150):
        row = await _ledger_row(engine, user["id"])
        if row is not None and row.last_error:
            break
        await asyncio.sleep(0.1)
    assert row is not None, "the welcome was never tried"
    assert row.last_error, "the welcome never failed against the outage"
    headers = bearer(await login(http, email=email))
    erased = await http.delete(f"/api/users/{user['id']}", headers=headers)
    assert erased.status_code == 204, erased.text

    assert (await http.delete("/_sandbox/sendgrid/faults")).status_code == 204
    result = await asyncio.wait_for(handle.result(), 30)
    assert result["skipped"] == "account_closed"
    assert await _mailbox(http, email) == []
    assert await _mailbox(http, erased_email(user["id"])) == []


async def test_a_start_missed_while_temporal_was_down_is_made_by_the_relay(
    live: LiveStack, engine: AsyncEngine, http: httpx.AsyncClient
) -> None:
    from api.app import create_app
    from core.settings import Settings

    cut_off = Settings.model_validate(
        live.settings.model_dump() | {"temporal_address": f"127.0.0.1:{free_port()}"}
    )
    app = create_app(cut_off)
    email = unique_email("relay")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as isolated:
            response = await isolated.post(
                "/api/users", json={"email": email, "password": PASSWORD, "name": "Relay"}
            )
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    sessions = create_session_factory(engine)
    async with sessions() as session:
        start = (
            await session.exec(
                select(WorkflowStart).where(WorkflowStart.workflow_id == workflow_id(user_id))
            )
        ).one()
    assert start.started_at is None
    assert start.attempts == 1
    assert start.last_error

    # Temporal is back: the relay (run every minute by a Schedule) starts it.
    started = await relay_pending(live.client, sessions, older_than=timedelta(0))
    assert started >= 1
    await asyncio.wait_for(live.client.get_workflow_handle(workflow_id(user_id)).result(), 30)
    assert len(await _mailbox(http, email)) == 1
    # A second relay run does nothing more, and neither does starting it again.
    assert await relay_pending(live.client, sessions, older_than=timedelta(0)) == 0
