"""Pruning the outbox: only rows delivered longer ago than the retention go, in batches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import col, select
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.pruning import OutboxPruneActivities
from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery, EventReceipt
from models.outbox import OutboxEvent
from services.events.pruning import Retention
from tests.stack import suite_worker
from workflows.maintenance import OutboxPruneWorkflow
from workflows.types.pruning import (
    OUTBOX_PRUNE_WORKFLOW,
    PruneBatchInput,
    PruneBatchResult,
    PruneInput,
    PruneResult,
)

DAY = timedelta(days=1)


async def _event(
    sessions: SessionFactory,
    *,
    delivered_days_ago: float | None,
    deliveries: dict[str, DeliveryStatus],
) -> str:
    """An event with its deliveries (and a receipt for each delivered one)."""
    async with transaction(sessions) as session:
        row = await publish(session, EventType.USER_CREATED, "user_prune", {"n": 1})
        assert row.seq is not None
        if delivered_days_ago is not None:
            row.delivered_at = utcnow() - delivered_days_ago * DAY
        row.dispatched_at = utcnow()
        session.add(row)
        for subscriber, status in deliveries.items():
            session.add(
                EventDelivery(
                    event_id=row.id,
                    subscriber=subscriber,
                    event_type=row.type,
                    aggregate_type=row.aggregate_type,
                    aggregate_id=row.aggregate_id,
                    seq=row.seq,
                    status=status,
                )
            )
            if status is DeliveryStatus.DELIVERED:
                session.add(EventReceipt(event_id=row.id, subscriber=subscriber))
        return row.id


async def _left(sessions: SessionFactory, ids: Sequence[str]) -> set[str]:
    async with sessions() as session:
        rows = await session.exec(select(OutboxEvent.id).where(col(OutboxEvent.id).in_(ids)))
        return set(rows.all())


async def _count(
    sessions: SessionFactory, model: type[EventDelivery | EventReceipt], event_id: str
) -> int:
    async with sessions() as session:
        column = col(model.event_id)
        total = await session.exec(select(func.count()).where(column == event_id))
        return int(total.one())


async def test_prune_deletes_only_rows_delivered_before_the_retention(
    db_sessions: SessionFactory,
) -> None:
    done = DeliveryStatus.DELIVERED
    old = [await _event(db_sessions, delivered_days_ago=8, deliveries={"a": done, "b": done})]
    old.append(await _event(db_sessions, delivered_days_ago=30, deliveries={"a": done}))
    recent = await _event(db_sessions, delivered_days_ago=6, deliveries={"a": done})
    undelivered = await _event(
        db_sessions, delivered_days_ago=None, deliveries={"a": DeliveryStatus.FAILED}
    )
    # Marked delivered, yet a dead letter is still open: it stays too.
    still_owed = await _event(
        db_sessions, delivered_days_ago=9, deliveries={"a": done, "b": DeliveryStatus.FAILED}
    )
    # The webhook retentions do not matter here: this test makes no webhook deliveries.
    activities = OutboxPruneActivities(
        db_sessions,
        Retention(
            outbox=7 * DAY,
            webhook_delivered=30 * DAY,
            webhook_failed=90 * DAY,
            workflow_starts=3650 * DAY,
        ),
    )
    env = ActivityEnvironment()

    first = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1))
    assert first == PruneBatchResult(deleted=1)
    rest = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1000))
    assert rest.deleted >= 1
    assert await _left(db_sessions, old) == set()
    assert await _left(db_sessions, [recent, undelivered, still_owed]) == {
        recent,
        undelivered,
        still_owed,
    }
    # Deliveries and receipts went with their events (ON DELETE CASCADE).
    assert await _count(db_sessions, EventDelivery, old[0]) == 0
    assert await _count(db_sessions, EventReceipt, old[0]) == 0
    assert await _count(db_sessions, EventDelivery, still_owed) == 2
    again = await env.run(activities.prune_outbox_batch, PruneBatchInput(limit=1000))
    assert again.deleted == 0


async def test_the_workflow_prunes_batch_after_batch_until_one_comes_back_short(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client: Client = time_skipping_env.client
    batches: list[int] = []
    scripted = [3, 3, 1]

    @activity.defn(name="events.prune_outbox_batch")
    async def prune_outbox_batch(input: PruneBatchInput) -> PruneBatchResult:
        batches.append(input.limit)
        return PruneBatchResult(deleted=scripted[len(batches) - 1])

    queue = f"prune-{uuid.uuid4().hex[:8]}"
    async with suite_worker(
        client, task_queue=queue, workflows=[OutboxPruneWorkflow], activities=[prune_outbox_batch]
    ):
        result = await client.execute_workflow(
            OUTBOX_PRUNE_WORKFLOW,
            PruneInput(batch_size=3),
            id=f"outbox-prune-{queue}",
            task_queue=queue,
            result_type=PruneResult,
        )
        assert result == PruneResult(deleted=7, batches=3)
        assert batches == [3, 3, 3]

        batches.clear()
        scripted[:] = [3, 3, 3]
        capped = await client.execute_workflow(
            OUTBOX_PRUNE_WORKFLOW,
            PruneInput(batch_size=3, max_batches=2),
            id=f"outbox-prune-capped-{queue}",
            task_queue=queue,
            result_type=PruneResult,
        )
        assert capped == PruneResult(deleted=6, batches=2)
