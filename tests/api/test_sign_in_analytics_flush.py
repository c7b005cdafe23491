"""A sign-in that links a visitor writes the events waiting in the batch writer before it
locks the account: the writer holds the account (``FOR SHARE``) for the events naming it,
and a sign-in that upgrades the password's hash has locked the row to write it."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from core.settings import Settings
from services.analytics.ingest import PendingEvent
from tests.api.test_customer_lock_order import make_rehash_due, stored_hash
from tests.factories import PASSWORD, login, register


async def _written(engine: AsyncEngine, event_id: str) -> bool:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT 1 FROM analytics_events WHERE id = :id"), {"id": event_id}
        )
        return found.first() is not None


async def test_a_sign_in_that_rehashes_writes_the_waiting_events_before_its_lock(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer's flush, asked after ``authenticate`` had locked the account to rehash
    its password, waited for that lock until its write timed out: the sign-in stalled
    that long and the visitor's last events were not written before the link (a
    warning). Now asked before the lock: written, no wait, no warning."""
    quiet = settings.model_copy(
        # No write of the writer's own while the test runs: only the sign-in's flush.
        update={"analytics_flush_interval_ms": 600_000, "analytics_write_timeout_seconds": 1.0}
    )
    app = create_app(quiet)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            user = await register(http)
            await login(http, email=user["email"])
            await make_rehash_due(engine, user["id"])
            before = await stored_hash(engine, user["id"])
            # A view of the account's, from another device, waiting in the writer.
            waiting = PendingEvent("product_view", user_id=user["id"], properties={})
            await app.state.shop.ingest.add([waiting])
            with caplog.at_level(logging.WARNING, logger="api.routes.auth"):
                signed_in = await http.post(
                    "/api/auth/login",
                    json={
                        "email": user["email"],
                        "password": PASSWORD,
                        "anonymousId": "visitor-flush-1",
                    },
                )
            assert signed_in.status_code == 200, signed_in.text
            assert await _written(engine, waiting.id)
    assert not [r for r in caplog.records if "not written before linking" in r.getMessage()]
    assert await stored_hash(engine, user["id"]) != before  # the hash was upgraded
