"""Handlers send email through the real SendGrid SDK to the sandbox on a live API; what
the relays know is each test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from cli.stack.process import free_port
from core.db import create_session_factory
from core.settings import Settings
from integrations.email.factory import build_sender
from integrations.email.templates import EmailTemplates
from models.events import EventSubscription
from services.email import EmailService
from tests.live import live_api


@dataclass(frozen=True)
class MailApi:
    settings: Settings
    http: httpx.AsyncClient

    async def mailbox(self, to: str) -> list[dict[str, Any]]:
        """What the sandbox accepted for ``to``, oldest first."""
        response = await self.http.get("/_sandbox/mail/messages", params={"to": to})
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()
        return messages[::-1]


@pytest.fixture(scope="module")
async def mail_api(settings: Settings, temporal_client: Client) -> AsyncIterator[MailApi]:
    """The API (and its SendGrid sandbox) over real HTTP, one per test module."""
    live = Settings.model_validate(settings.model_dump() | {"shop_api_port": free_port()})
    async with live_api(live) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        yield MailApi(live, http)
        await http.delete("/_sandbox/sendgrid/faults")


@pytest.fixture
def emails(engine: AsyncEngine, mail_api: MailApi) -> EmailService:
    """The email service as workers build it. Its ledger commits on connections of its
    own, as in production: inside the test's rolled-back transaction, a handler's failure
    would roll the ledger back with it, which never happens in production."""
    return EmailService(
        create_session_factory(engine),
        build_sender(mail_api.settings),
        EmailTemplates(),
        mail_api.settings.email_from,
    )


@pytest.fixture(autouse=True)
async def _relays_know_only_this_tests_subscribers(engine: AsyncEngine) -> AsyncIterator[None]:
    """The (subscriber, event type) pairs earlier tests' relays wrote are forgotten: every
    relay fans out to the pairs any relay knew within the grace, so a test subscriber of
    an earlier test would get this test's events (and hold them pending)."""

    async def forget() -> None:
        async with engine.begin() as conn:
            await conn.execute(delete(EventSubscription))

    await forget()
    yield
    await forget()
