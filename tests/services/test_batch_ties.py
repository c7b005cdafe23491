"""Batch jobs take rows oldest first in one total order: rows of one instant (or one
event's deliveries, which share its seq) by their unique key. Four such rows are written
in the reverse of their key's order (so the table's physical order is not the answer)
and taken two at a time: each batch takes the next two by key, whatever plan the
database picks (one transaction, rolled back; the instant is far in the past, so that no
other test's committed row is old enough to be taken).

Each of these batches takes the head of what is left (it deletes, starts or moves the rows
it took), never a page after a cursor: a tie never made one skip or repeat a row. It made
which rows a batch of N took, of those at its boundary, the plan's choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from core.db import SessionFactory, transaction
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from models.webhook_deliveries import WebhookDelivery, WebhookStatus
from models.webhooks import WebhookEndpoint
from models.workflow_starts import WorkflowStart
from services.events.admin import EventAdminRepository
from services.events.deliveries import DeliveryRepository
from services.events.pruning import OutboxPruneRepository
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import new_secret
from services.workflow_starts import WorkflowStartRepository

INSTANT = datetime(2001, 1, 1, tzinfo=UTC)
AFTER = INSTANT + timedelta(seconds=1)
BATCH = 2


def _keys(prefix: IdPrefix) -> list[str]:
    """Four ids of ``prefix`` in their sort order."""
    return sorted(new_id(prefix) for _ in range(4))


def _since_the_instant() -> timedelta:
    return utcnow() - AFTER


async def test_pending_workflow_starts_of_one_instant_are_taken_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.WORKFLOW_START)
    async with transaction(db_sessions) as session:
        for start_id in reversed(ids):
            session.add(
                WorkflowStart(
                    id=start_id,
                    workflow_type="TieWorkflow",
                    workflow_id=f"tie-{start_id}",
                    task_queue="ties",
                    input={},
                    created_at=INSTANT,
                )
            )
    taken: list[list[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            starts = WorkflowStartRepository(session)
            batch = [row.id for row in await starts.pending(_since_the_instant(), BATCH)]
            for start_id in batch:
                await starts.mark_started(start_id)
        taken.append(batch)
    assert taken == [ids[:2], ids[2:]]


async def test_outbox_rows_delivered_at_one_instant_are_pruned_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.EVENT)
    async with transaction(db_sessions) as session:
        for event_id in reversed(ids):
            session.add(
                OutboxEvent(
                    id=event_id,
                    type="tie.test",
                    aggregate_type="tie",
                    aggregate_id="tie_1",
                    created_at=INSTANT,
                    dispatched_at=INSTANT,
                    delivered_at=INSTANT,
                )
            )
    left: list[set[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            pruned = await OutboxPruneRepository(session).delete_delivered_before(AFTER, BATCH)
            assert pruned == BATCH
            rows = await session.exec(select(OutboxEvent.id).where(col(OutboxEvent.id).in_(ids)))
            left.append(set(rows.all()))
    assert left == [set(ids[2:]), set()]


async def test_webhook_deliveries_finished_at_one_instant_are_pruned_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.WEBHOOK_DELIVERY)
    async with transaction(db_sessions) as session:
        endpoint = WebhookEndpoint(
            url="https://hooks.example.com/ties", event_types=["test.none"], secret=new_secret()
        )
        session.add(endpoint)
        await session.flush()
        for delivery_id in reversed(ids):
            session.add(
                WebhookDelivery(
                    id=delivery_id,
                    endpoint_id=endpoint.id,
                    event_id=new_id(IdPrefix.EVENT),
                    event_type="order.created",
                    payload={},
                    status=WebhookStatus.DELIVERED,
                    created_at=INSTANT,
                    finished_at=INSTANT,
                )
            )
    left: list[set[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            deliveries = WebhookDeliveryRepository(session)
            pruned = await deliveries.delete_finished_before(WebhookStatus.DELIVERED, AFTER, BATCH)
            assert pruned == BATCH
            rows = await session.exec(
                select(WebhookDelivery.id).where(col(WebhookDelivery.id).in_(ids))
            )
            left.append(set(rows.all()))
    assert left == [set(ids[2:]), set()]


async def _one_event_for_four(
    sessions: SessionFactory, status: DeliveryStatus, started_at: datetime | None
) -> tuple[str, list[str]]:
    """An event with four deliveries (one seq), written in the reverse of their
    subscribers' order; the event's id and the subscribers in order."""
    subscribers = [f"tie-{letter}" for letter in "abcd"]
    async with transaction(sessions) as session:
        event = OutboxEvent(
            type="tie.test", aggregate_type="tie", aggregate_id="tie_1", dispatched_at=INSTANT
        )
        session.add(event)
        await session.flush()
        assert event.seq is not None
        for subscriber in reversed(subscribers):
            session.add(
                EventDelivery(
                    event_id=event.id,
                    subscriber=subscriber,
                    event_type=event.type,
                    aggregate_type=event.aggregate_type,
                    aggregate_id=event.aggregate_id,
                    seq=event.seq,
                    status=status,
                    started_at=started_at,
                    workflow_id="tie-batch" if started_at else None,
                )
            )
        return event.id, subscribers


async def test_deliveries_of_one_event_started_long_ago_are_taken_by_subscriber(
    db_sessions: SessionFactory,
) -> None:
    _, subscribers = await _one_event_for_four(db_sessions, DeliveryStatus.PENDING, INSTANT)
    taken: list[list[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            deliveries = DeliveryRepository(session)
            batch = await deliveries.started_before(_since_the_instant(), BATCH)
            for delivery in batch:
                await deliveries.restart(delivery)  # started_at cleared: not taken again
        taken.append([delivery.subscriber for delivery in batch])
    assert taken == [subscribers[:2], subscribers[2:]]


async def test_failed_deliveries_of_one_event_are_replayed_by_subscriber(
    db_sessions: SessionFactory,
) -> None:
    event_id, subscribers = await _one_event_for_four(db_sessions, DeliveryStatus.FAILED, None)
    moved: list[list[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            pairs = await EventAdminRepository(session).replay_failed(
                event_ids=[event_id], subscriber=None, event_type=None, limit=BATCH
            )
        moved.append(sorted(subscriber for _, subscriber in pairs))
    assert moved == [subscribers[:2], subscribers[2:]]
