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

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.events import DeliveryStatus
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
from tests.events.admin.seeding import Seeder

INSTANT = datetime(2001, 1, 1, tzinfo=UTC)
AFTER = INSTANT + timedelta(seconds=1)
BATCH = 2


def _keys(prefix: IdPrefix) -> list[str]:
    """Four ids of ``prefix`` in their sort order."""
    return sorted(new_id(prefix) for _ in range(4))


def _since_the_instant() -> timedelta:
    return utcnow() - AFTER


async def _written_in_reverse(sessions: SessionFactory, rows: Sequence[SQLModel]) -> None:
    """``rows`` (in their key's order) written last one first."""
    async with transaction(sessions) as session:
        for row in reversed(rows):
            session.add(row)


Prune = Callable[[AsyncSession], Awaitable[int]]


async def _left_after_two_batches(
    sessions: SessionFactory, prune: Prune, key: Any, keys: list[str]
) -> list[set[str]]:
    """Which of ``keys`` (a table's ``key`` column) are left after each of two batches."""
    left: list[set[str]] = []
    for _ in range(2):
        async with transaction(sessions) as session:
            assert await prune(session) == BATCH
            rows = await session.exec(select(key).where(col(key).in_(keys)))
            left.append(set(rows.all()))
    return left


def _starts_of_the_instant(ids: list[str], *, started: bool) -> list[WorkflowStart]:
    """Workflow starts requested at ``INSTANT`` (and started then, if ``started``)."""
    return [
        WorkflowStart(
            id=start_id,
            workflow_type="TieWorkflow",
            workflow_id=f"tie-{start_id}",
            task_queue="ties",
            input={},
            created_at=INSTANT,
            started_at=INSTANT if started else None,
        )
        for start_id in ids
    ]


async def test_pending_workflow_starts_of_one_instant_are_taken_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.WORKFLOW_START)
    await _written_in_reverse(db_sessions, _starts_of_the_instant(ids, started=False))
    taken: list[list[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            starts = WorkflowStartRepository(session)
            batch = [row.id for row in await starts.pending(_since_the_instant(), BATCH)]
            for start_id in batch:
                await starts.mark_started(start_id)
        taken.append(batch)
    assert taken == [ids[:2], ids[2:]]


async def test_workflow_starts_started_at_one_instant_are_pruned_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.WORKFLOW_START)
    await _written_in_reverse(db_sessions, _starts_of_the_instant(ids, started=True))

    async def prune(session: AsyncSession) -> int:
        return await WorkflowStartRepository(session).delete_started_before(AFTER, BATCH)

    left = await _left_after_two_batches(db_sessions, prune, WorkflowStart.id, ids)
    assert left == [set(ids[2:]), set()]


async def test_outbox_rows_delivered_at_one_instant_are_pruned_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.EVENT)
    rows = [
        OutboxEvent(
            id=event_id,
            type="tie.test",
            aggregate_type="tie",
            aggregate_id="tie_1",
            created_at=INSTANT,
            dispatched_at=INSTANT,
            delivered_at=INSTANT,
        )
        for event_id in ids
    ]
    await _written_in_reverse(db_sessions, rows)

    async def prune(session: AsyncSession) -> int:
        return await OutboxPruneRepository(session).delete_delivered_before(AFTER, BATCH)

    left = await _left_after_two_batches(db_sessions, prune, OutboxEvent.id, ids)
    assert left == [set(ids[2:]), set()]


async def test_webhook_deliveries_finished_at_one_instant_are_pruned_by_id(
    db_sessions: SessionFactory,
) -> None:
    ids = _keys(IdPrefix.WEBHOOK_DELIVERY)
    endpoint = WebhookEndpoint(
        url="https://hooks.example.com/ties", event_types=["test.none"], secret=new_secret()
    )
    await _written_in_reverse(db_sessions, [endpoint])
    rows = [
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
        for delivery_id in ids
    ]
    await _written_in_reverse(db_sessions, rows)

    async def prune(session: AsyncSession) -> int:
        deliveries = WebhookDeliveryRepository(session)
        return await deliveries.delete_finished_before(WebhookStatus.DELIVERED, AFTER, BATCH)

    left = await _left_after_two_batches(db_sessions, prune, WebhookDelivery.id, ids)
    assert left == [set(ids[2:]), set()]


async def _one_event_for_four(
    sessions: SessionFactory, status: DeliveryStatus
) -> tuple[str, list[str]]:
    """An event of ``INSTANT`` with four deliveries (one seq, started then), written in
    the reverse of their subscribers' order; the event's id and the subscribers in order."""
    subscribers = [f"tie-{letter}" for letter in "abcd"]
    event = await Seeder(sessions).event(
        deliveries={subscriber: status for subscriber in reversed(subscribers)},
        age=utcnow() - INSTANT,
    )
    return event.id, subscribers


async def test_deliveries_of_one_event_started_long_ago_are_taken_by_subscriber(
    db_sessions: SessionFactory,
) -> None:
    _, subscribers = await _one_event_for_four(db_sessions, DeliveryStatus.PENDING)
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
    event_id, subscribers = await _one_event_for_four(db_sessions, DeliveryStatus.FAILED)
    moved: list[list[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            pairs = await EventAdminRepository(session).replay_failed(
                event_ids=[event_id], subscriber=None, event_type=None, limit=BATCH
            )
        moved.append(sorted(subscriber for _, subscriber in pairs))
    assert moved == [subscribers[:2], subscribers[2:]]
