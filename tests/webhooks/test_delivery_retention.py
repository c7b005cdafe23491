"""Finished webhook deliveries are pruned by the outbox's pruning batch after their
status's retention (delivered: ``WEBHOOK_DELIVERY_RETENTION_DAYS``, failed: the longer
``WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS``), with their attempts; pending ones never:
``OutboxPruneActivities`` with the settings' retention, on the real database (one
transaction, rolled back)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.pruning import OutboxPruneActivities
from core.db import SessionFactory, transaction
from core.ids import IdPrefix, new_id
from core.settings import Settings
from models.base import utcnow
from models.webhook_deliveries import WebhookAttempt, WebhookDelivery, WebhookStatus
from models.webhooks import WebhookEndpoint
from services.events.pruning import Retention
from services.webhooks.delivery_repository import AttemptRecord, WebhookDeliveryRepository
from services.webhooks.endpoints import new_secret
from services.webhooks.repository import WebhookEndpointRepository
from workflows.types.pruning import PruneBatchInput

DAY = timedelta(days=1)


async def _endpoint(sessions: SessionFactory) -> str:
    async with transaction(sessions) as session:
        endpoint = await WebhookEndpointRepository(session).add(
            WebhookEndpoint(
                url="https://hooks.example.com/kept", event_types=["test.none"], secret=new_secret()
            )
        )
        return endpoint.id


async def _delivery(
    sessions: SessionFactory,
    endpoint_id: str,
    status: WebhookStatus,
    *,
    days_ago: float,
    generation: int = 0,
) -> str:
    """A delivery recorded ``days_ago`` with one attempt: delivered or failed then, or
    still ``pending`` (being retried: its attempt failed, retries to come)."""
    event_id = new_id(IdPrefix.EVENT)
    async with transaction(sessions) as session:
        deliveries = WebhookDeliveryRepository(session)
        await deliveries.add_once(
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type="order.created",
            payload={"type": "order.created", "timestamp": "t", "data": {}},
        )
        found = await deliveries.target(event_id, endpoint_id)
        assert found is not None
        row = found[0]
        row.generation = generation
        deliveries.save(row)
        await session.flush()
        succeeded = status is WebhookStatus.DELIVERED
        assert await deliveries.record_attempt(
            row,
            AttemptRecord(
                generation=generation,
                succeeded=succeeded,
                status_code=200 if succeeded else 500,
                error=None if succeeded else "HTTP 500",
                duration_ms=5,
            ),
        )
        if status is WebhookStatus.FAILED:
            assert await deliveries.fail(event_id, endpoint_id, generation, "HTTP 500")
        await session.refresh(row)
        assert row.status == status
        then = utcnow() - days_ago * DAY
        row.created_at = then
        if row.finished_at is not None:
            row.finished_at = then
        deliveries.save(row)
        return row.id


async def _left(sessions: SessionFactory, endpoint_id: str) -> set[str]:
    async with sessions() as session:
        rows = await session.exec(
            select(WebhookDelivery.id).where(col(WebhookDelivery.endpoint_id) == endpoint_id)
        )
        return set(rows.all())


async def _attempts(sessions: SessionFactory, delivery_id: str) -> int:
    async with sessions() as session:
        rows = await session.exec(
            select(WebhookAttempt.id).where(col(WebhookAttempt.delivery_id) == delivery_id)
        )
        return len(rows.all())


async def test_delivered_and_failed_deliveries_go_after_their_retention_pending_never(
    db_sessions: SessionFactory, settings: Settings
) -> None:
    """Before, only skipped deliveries were pruned: delivered and failed ones stayed for
    ever and the table grew without bound."""
    assert (
        settings.webhook_delivery_retention_days,
        settings.webhook_failed_delivery_retention_days,
    ) == (30, 90)
    endpoint_id = await _endpoint(db_sessions)
    delivered, failed, pending = (
        WebhookStatus.DELIVERED,
        WebhookStatus.FAILED,
        WebhookStatus.PENDING,
    )
    old_delivered = await _delivery(db_sessions, endpoint_id, delivered, days_ago=31)
    recent_delivered = await _delivery(db_sessions, endpoint_id, delivered, days_ago=29)
    # Failed 60 days ago: past the delivered retention, within the failed one (staff's to
    # read and retry).
    failed_within = await _delivery(db_sessions, endpoint_id, failed, days_ago=60)
    old_failed = await _delivery(db_sessions, endpoint_id, failed, days_ago=91)
    # Recorded long ago and still being sent: the first try, and an operator's retry.
    old_pending = await _delivery(db_sessions, endpoint_id, pending, days_ago=400)
    retried = await _delivery(db_sessions, endpoint_id, pending, days_ago=400, generation=1)
    assert await _attempts(db_sessions, old_delivered) == 1

    activities = OutboxPruneActivities(db_sessions, Retention.of(settings))
    env = ActivityEnvironment()
    first = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1000))

    assert await _left(db_sessions, endpoint_id) == {
        recent_delivered,
        failed_within,
        old_pending,
        retried,
    }
    assert first.deleted >= 2
    # Their attempts went with them (ON DELETE CASCADE).
    assert await _attempts(db_sessions, old_delivered) == 0
    assert await _attempts(db_sessions, old_failed) == 0
    assert await _attempts(db_sessions, failed_within) == 1
    # Idempotent: what is left is all within its retention.
    again = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1000))
    assert again.deleted == 0
    assert len(await _left(db_sessions, endpoint_id)) == 4


async def test_a_batch_deletes_at_most_its_limit_of_each_kind_oldest_first(
    db_sessions: SessionFactory,
) -> None:
    endpoint_id = await _endpoint(db_sessions)
    delivered, failed = WebhookStatus.DELIVERED, WebhookStatus.FAILED
    # Far older than any other row: the retention below (ten years) sees only these.
    delivered_ids = [
        await _delivery(db_sessions, endpoint_id, delivered, days_ago=4000 + n) for n in range(3)
    ]
    failed_ids = [
        await _delivery(db_sessions, endpoint_id, failed, days_ago=4000 + n) for n in range(2)
    ]
    ten_years = 3650 * DAY
    activities = OutboxPruneActivities(
        db_sessions,
        Retention(
            outbox=ten_years,
            webhook_delivered=ten_years,
            webhook_failed=ten_years,
            workflow_starts=ten_years,
        ),
    )
    env = ActivityEnvironment()

    first = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1))
    # One of each kind, the oldest: a full batch says there may be more.
    assert first.deleted == 2
    assert await _left(db_sessions, endpoint_id) == {*delivered_ids[:2], failed_ids[0]}
    second = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1))
    assert second.deleted == 2
    assert await _left(db_sessions, endpoint_id) == {delivered_ids[0]}
    third = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1))
    assert third.deleted == 1
    last = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1))
    assert last.deleted == 0
    assert await _left(db_sessions, endpoint_id) == set()


def test_failed_deliveries_are_kept_at_least_as_long_as_delivered_ones() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS"):
        Settings(webhook_delivery_retention_days=30, webhook_failed_delivery_retention_days=7)
    with pytest.raises(ValidationError):
        Settings(webhook_delivery_retention_days=0)
    kept = Settings(webhook_delivery_retention_days=7, webhook_failed_delivery_retention_days=7)
    assert Retention.of(kept).webhook_failed == 7 * DAY
