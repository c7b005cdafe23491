"""An endpoint whose deliveries keep failing is disabled, staff are emailed, and a
success (or re-enabling) starts the count again: ``WebhookSender.give_up`` and ``send``
on the real database (rolled back, or committed to a real receiver), the alert through
the real SendGrid SDK to the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import SessionFactory, create_session_factory, transaction
from core.errors import Conflict, NotFound
from core.events import EventType
from core.settings import Settings
from models.webhooks import WebhookEndpoint, WebhookEndpointUpdate
from services.email import EmailService
from services.events.handlers.webhooks import webhook_disabled_alert
from services.events.handling import handle_once
from services.webhooks.deliveries import WebhookDeliveryAdmin
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import WebhookEndpointService, new_secret
from services.webhooks.repository import WebhookEndpointRepository
from services.webhooks.sending import WebhookSender, webhook_client
from temporal.clients.connection import TemporalConnection
from temporal.clients.webhooks import WebhookWorkflows
from tests.events.conftest import MailApi, emails, mail_api
from tests.factories import unique_email
from tests.fulfillment_rows import published
from tests.webhooks.receiver import Receiver, receiver

__all__ = ["emails", "mail_api"]

# A type no event has: the relay of a parallel test never adds deliveries to these.
NO_EVENTS = ["test.none"]


@pytest.fixture
def strict(settings: Settings) -> Settings:
    """Disabled after 3 failed deliveries in a row, the first at least 1 s before."""
    return settings.model_copy(
        update={"webhook_disable_after_failures": 3, "webhook_disable_after_seconds": 1.0}
    )


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as running:
        yield running


async def _endpoint(sessions: SessionFactory, url: str, events: list[str]) -> str:
    """An endpoint at ``url`` with a pending delivery of each event id."""
    async with transaction(sessions) as session:
        endpoint = await WebhookEndpointRepository(session).add(
            WebhookEndpoint(url=url, event_types=NO_EVENTS, secret=new_secret())
        )
        for event_id in events:
            await WebhookDeliveryRepository(session).add_once(
                endpoint_id=endpoint.id,
                event_id=event_id,
                event_type="order.created",
                payload={"type": "order.created", "timestamp": "t", "data": {}},
            )
        return endpoint.id


async def _read(sessions: SessionFactory, endpoint_id: str) -> WebhookEndpoint:
    async with sessions() as session:
        row = await WebhookEndpointRepository(session).get(endpoint_id)
        assert row is not None
        await session.refresh(row)
        return row


async def test_too_many_failures_for_too_long_disable_the_endpoint_once(
    db_sessions: SessionFactory, strict: Settings
) -> None:
    events = [f"evt_{uuid4().hex[:12]}" for _ in range(5)]
    endpoint_id = await _endpoint(db_sessions, "https://hooks.example.com/down", events)
    async with webhook_client(strict) as http:
        sender = WebhookSender(db_sessions, http, strict)

        async def give_up(event_id: str) -> bool:
            return await sender.give_up(event_id, endpoint_id, 0, "webhook_rejected: HTTP 410")

        assert await give_up(events[0]) is True
        assert await give_up(events[0]) is False  # a retried give-up counts nothing
        first = await _read(db_sessions, endpoint_id)
        assert first.consecutive_failures == 1
        assert first.failing_since is not None
        since = first.failing_since

        # Three in a row, but within a second of the first: still enabled.
        assert await give_up(events[1])
        assert await give_up(events[2])
        row = await _read(db_sessions, endpoint_id)
        assert (row.enabled, row.consecutive_failures, row.failing_since) == (True, 3, since)
        assert row.disabled_at is None

        await asyncio.sleep(max(0.0, (since - datetime.now(UTC)).total_seconds() + 1.1))
        assert await give_up(events[3])
        row = await _read(db_sessions, endpoint_id)
        assert (row.enabled, row.consecutive_failures) == (False, 4)
        assert row.disabled_at is not None
        assert row.disabled_at >= since
        assert row.disabled_reason == (f"4 consecutive failed deliveries since {since.isoformat()}")
        assert await give_up(events[4])  # one more in flight: failed, not counted, no alert
        assert (await _read(db_sessions, endpoint_id)).consecutive_failures == 4

    async with db_sessions() as session:
        [event] = await published(session, endpoint_id, EventType.WEBHOOK_ENDPOINT_DISABLED)
    assert event.data["endpointId"] == endpoint_id
    assert event.data["url"] == "https://hooks.example.com/down"
    assert event.data["reason"] == row.disabled_reason
    assert event.data["consecutiveFailures"] == 4

    # Re-enabled by staff: the count starts again.
    async with transaction(db_sessions) as session:
        again = await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
    assert (again.enabled, again.consecutive_failures, again.failing_since) == (True, 0, None)
    assert (again.disabled_at, again.disabled_reason) == (None, None)


async def test_a_delivered_webhook_ends_the_run_of_failures(
    engine: AsyncEngine, strict: Settings, hooks: Receiver, made: list[str]
) -> None:
    sessions = create_session_factory(engine)
    events = [f"evt_{uuid4().hex[:12]}" for _ in range(4)]
    endpoint_id = await _endpoint(sessions, hooks.url("flappy"), events)
    made.append(endpoint_id)
    async with webhook_client(strict) as http:
        sender = WebhookSender(sessions, http, strict)
        assert await sender.give_up(events[0], endpoint_id, 0, "HTTP 500")
        assert await sender.give_up(events[1], endpoint_id, 0, "HTTP 500")
        assert (await _read(sessions, endpoint_id)).consecutive_failures == 2

        assert await sender.send(events[2], endpoint_id, 0) == "delivered"
        row = await _read(sessions, endpoint_id)
        assert (row.consecutive_failures, row.failing_since) == (0, None)

        # The next failure starts a new run: three in all would not disable it yet.
        assert await sender.give_up(events[3], endpoint_id, 0, "HTTP 500")
        row = await _read(sessions, endpoint_id)
        assert (row.enabled, row.consecutive_failures) == (True, 1)
        assert row.failing_since is not None


async def test_staff_are_emailed_once_when_an_endpoint_is_disabled(
    db_sessions: SessionFactory, strict: Settings, emails: EmailService, mail_api: MailApi
) -> None:
    team = unique_email("webhooks")
    settings = mail_api.settings.model_copy(update={"webhook_alert_email": team})
    events = [f"evt_{uuid4().hex[:12]}" for _ in range(3)]
    endpoint_id = await _endpoint(db_sessions, "https://erp.example.com/in", events)
    async with webhook_client(strict) as http:
        sender = WebhookSender(
            db_sessions, http, strict.model_copy(update={"webhook_disable_after_seconds": 0.0})
        )
        for event_id in events:
            await sender.give_up(event_id, endpoint_id, 0, "HTTP 500")
    async with db_sessions() as session:
        [event] = await published(session, endpoint_id, EventType.WEBHOOK_ENDPOINT_DISABLED)

    subscriber = webhook_disabled_alert(emails, settings)
    assert await handle_once(db_sessions, subscriber, event.id) is True
    assert await handle_once(db_sessions, subscriber, event.id) is False
    [mail] = await mail_api.mailbox(team)
    assert mail["subject"] == "Webhook endpoint disabled: https://erp.example.com/in"
    assert "Reason: 3 consecutive failed deliveries since " in mail["text"]
    assert f"/api/admin/webhooks/{endpoint_id}" in mail["text"]


async def test_a_disabled_endpoint_counts_no_failures_and_is_re_enabled_before_a_retry(
    db_sessions: SessionFactory, settings: Settings
) -> None:
    """Staff pause an endpoint with a delivery still retrying: that delivery fails because
    the endpoint is disabled, which is no failure of the endpoint's (not counted), and an
    operator's retry is refused (409 ``webhook_endpoint_disabled``) until it is enabled
    again: before, the retry was accepted, refused by the send at once, failed again and
    counted against the endpoint."""
    events = [f"evt_{uuid4().hex[:12]}" for _ in range(2)]
    endpoint_id = await _endpoint(db_sessions, "https://hooks.example.com/paused", events)
    workflows = WebhookWorkflows(TemporalConnection.from_settings(settings), settings)
    async with webhook_client(settings) as http:
        sender = WebhookSender(db_sessions, http, settings)
        assert await sender.give_up(events[0], endpoint_id, 0, "HTTP 500")
        async with transaction(db_sessions) as session:
            await WebhookEndpointService(session).update(
                endpoint_id, WebhookEndpointUpdate(enabled=False)
            )
        # Its next attempt is refused (``send``: the endpoint is disabled), and given up.
        assert await sender.give_up(
            events[1], endpoint_id, 0, "webhook_rejected: the endpoint is disabled"
        )
    row = await _read(db_sessions, endpoint_id)
    assert (row.enabled, row.consecutive_failures) == (False, 1)

    async with db_sessions() as session:
        found = await WebhookDeliveryRepository(session).target(events[1], endpoint_id)
    assert found is not None
    delivery_id = found[0].id
    async with transaction(db_sessions) as session:
        with pytest.raises(Conflict) as refused:
            await WebhookDeliveryAdmin(session).retry(delivery_id, workflows)
    assert refused.value.code == "webhook_endpoint_disabled"
    assert refused.value.extra["endpointId"] == endpoint_id

    async with transaction(db_sessions) as session:
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
        again, start = await WebhookDeliveryAdmin(session).retry(delivery_id, workflows)
    assert (again.status, again.generation) == ("pending", 1)
    assert start.workflow_id == f"webhook-{events[1]}-{endpoint_id}-1"


async def test_enabled_true_on_an_enabled_endpoint_keeps_its_run_of_failures(
    db_sessions: SessionFactory, settings: Settings
) -> None:
    """Only re-enabling a disabled endpoint starts its count again: before, any PATCH
    carrying ``enabled: true`` (a client sending the whole endpoint back with a new
    description) reset the failures of an endpoint that was never disabled, and one
    failing for days was never disabled."""
    events = [f"evt_{uuid4().hex[:12]}" for _ in range(2)]
    endpoint_id = await _endpoint(db_sessions, "https://hooks.example.com/flaky", events)
    async with webhook_client(settings) as http:
        sender = WebhookSender(db_sessions, http, settings)
        for event_id in events:
            assert await sender.give_up(event_id, endpoint_id, 0, "HTTP 500")
    since = (await _read(db_sessions, endpoint_id)).failing_since
    assert since is not None

    async with transaction(db_sessions) as session:
        changed = await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(description="ERP sync", enabled=True)
        )
    assert (changed.description, changed.enabled) == ("ERP sync", True)
    assert (changed.consecutive_failures, changed.failing_since) == (2, since)

    async with transaction(db_sessions) as session:
        service = WebhookEndpointService(session)
        await service.update(endpoint_id, WebhookEndpointUpdate(enabled=False))
        again = await service.update(endpoint_id, WebhookEndpointUpdate(enabled=True))
    assert (again.enabled, again.consecutive_failures, again.failing_since) == (True, 0, None)
    assert (again.disabled_at, again.disabled_reason) == (None, None)


async def test_an_endpoint_s_failed_deliveries_are_retried_together_once_it_is_enabled(
    db_sessions: SessionFactory, settings: Settings
) -> None:
    """Back from an outage, an endpoint's failed deliveries are sent again in one call
    (oldest first, ``more`` while some are left), not one call each; not while it is
    disabled; a pending or delivered one is left alone."""
    events = [f"evt_{uuid4().hex[:12]}" for _ in range(3)]
    endpoint_id = await _endpoint(db_sessions, "https://hooks.example.com/back", events)
    workflows = WebhookWorkflows(TemporalConnection.from_settings(settings), settings)
    async with webhook_client(settings) as http:
        sender = WebhookSender(db_sessions, http, settings)
        for event_id in events[:2]:
            assert await sender.give_up(event_id, endpoint_id, 0, "HTTP 503")
    async with transaction(db_sessions) as session:
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=False)
        )
    async with transaction(db_sessions) as session:
        with pytest.raises(Conflict) as refused:
            await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
    assert refused.value.code == "webhook_endpoint_disabled"

    async with transaction(db_sessions) as session:
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
    batches = []
    for _ in range(3):
        async with transaction(db_sessions) as session:
            done, starts = await WebhookDeliveryAdmin(session).retry_failed(
                endpoint_id, workflows, limit=1
            )
        batches.append((done.retried, done.more, [s.workflow_id for s in starts]))
    assert batches == [
        (1, True, [f"webhook-{events[0]}-{endpoint_id}-1"]),
        (1, False, [f"webhook-{events[1]}-{endpoint_id}-1"]),
        (0, False, []),
    ]
    async with db_sessions() as session:
        repository = WebhookDeliveryRepository(session)
        states = []
        for event_id in events:
            found = await repository.target(event_id, endpoint_id)
            assert found is not None
            states.append((found[0].status, found[0].generation))
    assert states == [("pending", 1), ("pending", 1), ("pending", 0)]

    async with db_sessions() as session:
        with pytest.raises(NotFound):
            await WebhookDeliveryAdmin(session).retry_failed("whk_nope", workflows)
