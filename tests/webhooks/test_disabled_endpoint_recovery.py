"""Events raised while an endpoint is disabled are recorded for it as ``skipped`` (not
attempted), listed in its delivery log, sent once by ``retry-failed`` after it is enabled
again (with their own ``webhook-id``), and pruned with the outbox if never recovered: the
``webhooks`` subscriber, ``WebhookDeliveryAdmin`` and ``prune_outbox`` on the real
database (one transaction, rolled back)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from core.db import SessionFactory, create_session_factory, transaction
from core.errors import Conflict
from core.settings import Settings
from models.base import utcnow
from models.webhook_deliveries import SKIPPED_ENDPOINT_DISABLED, WebhookDelivery, WebhookStatus
from models.webhooks import WebhookEndpointUpdate
from services.events.handlers.webhooks import webhooks_subscriber
from services.events.pruning import Retention, prune_outbox
from services.webhooks.deliveries import WebhookDeliveryAdmin
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import WebhookEndpointService
from temporal.clients.connection import TemporalConnection
from temporal.clients.webhooks import WebhookWorkflows
from tests.webhooks.rows import ORDER_CREATED, delivery_of, disabled_endpoint, order_created

# A type only this file's endpoints take (and ``*`` endpoints of other tests, whose
# rows this file's rolled-back transaction never shows them).
EVENT = ORDER_CREATED
PAUSED = "https://hooks.example.com/paused"


async def test_events_raised_while_disabled_are_skipped_then_recovered_once(
    db_sessions: SessionFactory, settings: Settings, temporal_client: Client
) -> None:
    """Before, a disabled endpoint got no row at all for an event raised meanwhile:
    re-enabled, it could never get what it missed."""
    workflows = WebhookWorkflows(TemporalConnection.of(temporal_client), settings)
    subscriber = webhooks_subscriber(workflows)
    endpoint_id = await disabled_endpoint(db_sessions, PAUSED)
    events = [order_created(), order_created()]
    for event in events:
        async with transaction(db_sessions) as session:
            await subscriber.handle(event, session)
        # The relay delivering the event again records nothing twice.
        async with transaction(db_sessions) as session:
            await subscriber.handle(event, session)

    skipped = [await delivery_of(db_sessions, e.id, endpoint_id) for e in events]
    for row in skipped:
        assert (row.status, row.attempts, row.generation) == ("skipped", 0, 0)
        assert row.last_error == "endpoint_disabled: the endpoint was disabled when the event came"
        assert row.finished_at is not None
    async with db_sessions() as session:
        listed = await WebhookDeliveryAdmin(session).page(
            endpoint_id, status=WebhookStatus.SKIPPED, page=1, limit=20
        )
    assert [i.id for i in listed.items] == [skipped[1].id, skipped[0].id]  # newest first
    assert all(i.attempt_log == [] for i in listed.items)

    # Still disabled: nothing is sent (it would be refused at once).
    async with transaction(db_sessions) as session:
        with pytest.raises(Conflict) as refused:
            await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
    assert refused.value.code == "webhook_endpoint_disabled"

    async with transaction(db_sessions) as session:
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
        done, starts = await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
    assert (done.retried, done.more) == (2, False)
    # Oldest first, each its own run; the row keeps its id, the ``webhook-id`` sent.
    assert [s.workflow_id for s in starts] == [f"webhook-{e.id}-{endpoint_id}-1" for e in events]
    for event, before in zip(events, skipped, strict=True):
        after = await delivery_of(db_sessions, event.id, endpoint_id)
        assert (after.id, after.status, after.generation) == (before.id, "pending", 1)
        assert after.finished_at is None

    # Sent once: a second call (or one racing the first: the rows are locked) has none.
    async with transaction(db_sessions) as session:
        again, more_starts = await WebhookDeliveryAdmin(session).retry_failed(
            endpoint_id, workflows
        )
    assert (again.retried, again.more, more_starts) == (0, False, [])

    # An event raised now that it is enabled is sent as usual, not skipped.
    later = order_created()
    async with transaction(db_sessions) as session:
        await subscriber.handle(later, session)
    assert (await delivery_of(db_sessions, later.id, endpoint_id)).status == "pending"


async def test_a_skipped_delivery_is_retried_alone_once_re_enabled(
    db_sessions: SessionFactory, settings: Settings, temporal_client: Client
) -> None:
    workflows = WebhookWorkflows(TemporalConnection.of(temporal_client), settings)
    endpoint_id = await disabled_endpoint(db_sessions, PAUSED)
    event = order_created()
    async with transaction(db_sessions) as session:
        await webhooks_subscriber(workflows).handle(event, session)
    delivery_id = (await delivery_of(db_sessions, event.id, endpoint_id)).id
    async with transaction(db_sessions) as session:
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
        retried, start = await WebhookDeliveryAdmin(session).retry(delivery_id, workflows)
    assert (retried.id, retried.status, retried.generation) == (delivery_id, "pending", 1)
    assert start.workflow_id == f"webhook-{event.id}-{endpoint_id}-1"
    async with transaction(db_sessions) as session:
        with pytest.raises(Conflict) as twice:
            await WebhookDeliveryAdmin(session).retry(delivery_id, workflows)
    assert twice.value.code == "webhook_delivery_not_failed"


async def test_skipped_deliveries_never_recovered_are_pruned_with_the_outbox(
    db_sessions: SessionFactory, settings: Settings, temporal_client: Client
) -> None:
    """An endpoint left disabled does not keep every event for ever: a skipped delivery
    older than the retention goes with the outbox's pruning; a recent one, and a failed
    one within its own retention (staff's to retry), stay."""
    workflows = WebhookWorkflows(TemporalConnection.of(temporal_client), settings)
    endpoint_id = await disabled_endpoint(db_sessions, PAUSED)
    old, recent = order_created(), order_created()
    async with transaction(db_sessions) as session:
        for event in (old, recent):
            await webhooks_subscriber(workflows).handle(event, session)
        failed = order_created()
        repository = WebhookDeliveryRepository(session)
        await repository.add_once(
            endpoint_id=endpoint_id,
            event_id=failed.id,
            event_type=str(EVENT),
            payload={"type": str(EVENT), "timestamp": "t", "data": {}},
        )
        assert await repository.fail(failed.id, endpoint_id, 0, "HTTP 500")
    # Far older than any other row: the prune below, ten years back, sees only these.
    long_ago = utcnow() - timedelta(days=4000)
    for event in (old, failed):
        row = await delivery_of(db_sessions, event.id, endpoint_id)
        async with transaction(db_sessions) as session:
            row.created_at = row.finished_at = long_ago
            session.add(row)

    ten_years = timedelta(days=3650)
    # Failed ones have a retention of their own (longer): not this one.
    retention = Retention(
        outbox=ten_years,
        webhook_delivered=ten_years,
        webhook_failed=timedelta(days=5000),
        workflow_starts=ten_years,
    )
    async with transaction(db_sessions) as session:
        pruned = await prune_outbox(session, retention=retention, limit=100)
    assert pruned == 1
    async with db_sessions() as session:
        left = await session.exec(
            select(WebhookDelivery.event_id, WebhookDelivery.status).where(
                col(WebhookDelivery.endpoint_id) == endpoint_id
            )
        )
        assert set(left.all()) == {(recent.id, "skipped"), (failed.id, "failed")}


async def test_two_retry_failed_calls_at_once_send_each_skipped_delivery_once(
    engine: AsyncEngine, settings: Settings, made: list[str]
) -> None:
    """Two staff (or a double click) recovering the same endpoint at once: each skipped
    delivery is taken by one call only (its row locked, then pending for the other)."""
    sessions = create_session_factory(engine)
    endpoint_id = await disabled_endpoint(sessions, PAUSED)
    made.append(endpoint_id)
    events = [order_created() for _ in range(6)]
    async with transaction(sessions) as session:
        repository = WebhookDeliveryRepository(session)
        for event in events:
            await repository.add_once(
                endpoint_id=endpoint_id,
                event_id=event.id,
                event_type=str(EVENT),
                payload={"type": str(EVENT), "timestamp": "t", "data": {}},
                skipped_because=SKIPPED_ENDPOINT_DISABLED,
            )
        await WebhookEndpointService(session).update(
            endpoint_id, WebhookEndpointUpdate(enabled=True)
        )
    workflows = WebhookWorkflows(TemporalConnection.from_settings(settings), settings)

    async def recover() -> list[str]:
        async with transaction(sessions) as session:
            _, starts = await WebhookDeliveryAdmin(session).retry_failed(endpoint_id, workflows)
            await asyncio.sleep(0.2)  # holding its locks while the other call waits
        return [s.workflow_id for s in starts]

    first, second = await asyncio.gather(recover(), recover())
    assert sorted(first + second) == sorted(f"webhook-{e.id}-{endpoint_id}-1" for e in events)
    assert not set(first) & set(second)
    for event in events:
        row = await delivery_of(sessions, event.id, endpoint_id)
        assert (row.status, row.generation) == ("pending", 1)
