"""Batch jobs take rows oldest first in one total order: rows of one instant (or one
event's deliveries, which share its seq) by their unique key. Four such rows are written
in the reverse of their key's order (so the table's physical order is not the answer)
and taken two at a time: each batch takes the next two by key, whatever plan the
database picks (one transaction, rolled back; the instant is far in the past, so that no
other test's committed row is old enough to be taken).

Each of these batches takes the head of what is left (it deletes, starts or moves the rows
it took), but the lost-delivery sweep's, which pages after a cursor (the unique key it
orders by): a tie never made one skip or repeat a row. It made which rows a batch of N
took, of those at its boundary, the plan's choice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.catalog import ProductCreate
from models.events import DeliveryStatus, EventDelivery
from models.inventory import Reservation, ReservationStatus
from models.outbox import OutboxEvent
from models.webhook_deliveries import WebhookDelivery, WebhookStatus
from models.webhooks import WebhookEndpoint
from models.workflow_starts import WorkflowStart
from services.catalog.products import ProductService
from services.events.admin import EventAdminRepository
from services.events.deliveries import DeliveryRepository
from services.events.pruning import OutboxPruneRepository
from services.events.relay_repository import RelayRepository, SweepKey
from services.inventory.reservation_repository import ReservationRepository
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import new_secret
from services.workflow_starts import WorkflowStartRepository
from tests.events.admin.seeding import Seeder
from tests.factories import unique_slug
from tests.query_plans import statement_plans

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
            batch = await RelayRepository(session).started_before(_since_the_instant(), BATCH)
            for delivery in batch:
                # started_at cleared: not taken again
                await DeliveryRepository(session).restart(delivery)
        taken.append([delivery.subscriber for delivery in batch])
    assert taken == [subscribers[:2], subscribers[2:]]


async def test_deliveries_of_one_event_started_long_ago_are_paged_by_subscriber(
    db_sessions: SessionFactory,
) -> None:
    """The lost-delivery sweep's pages (it restarts only the lost ones, so it pages
    after a cursor): one event's deliveries share its seq, the subscriber completes the
    key, and no page skips or repeats one of them."""
    _, subscribers = await _one_event_for_four(db_sessions, DeliveryStatus.PENDING)
    pages: list[list[str]] = []
    after: SweepKey | None = None
    async with db_sessions() as session:
        work = RelayRepository(session)
        for _ in range(3):
            page = await work.started_before(_since_the_instant(), BATCH, after=after)
            pages.append([delivery.subscriber for delivery in page])
            if page:
                after = (page[-1].seq, page[-1].subscriber)
    assert pages == [subscribers[:2], subscribers[2:], []]


async def test_the_lost_delivery_sweep_reads_by_index(db_session: AsyncSession) -> None:
    work = RelayRepository(db_session)
    plans = await statement_plans(
        db_session,
        lambda: work.started_before(_since_the_instant(), BATCH, after=(1, "a")),
    )
    # The pending rows only, from an index of them.
    assert len(plans) == 1, plans
    assert "Index Scan using event_deliveries_" in plans[0], plans
    assert "Seq Scan" not in plans[0], plans


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


async def _product(sessions: SessionFactory) -> str:
    async with transaction(sessions) as session:
        product = await ProductService(session).create(
            ProductCreate(sku=unique_slug("tie"), name="Tied thing", price=100)
        )
        return product.id


async def test_expired_reservations_are_swept_oldest_order_first(
    db_sessions: SessionFactory,
) -> None:
    """Four orders' reservations expired, more than a sweep takes: the orders whose
    reservations expired first go first (an order by its earliest), two of one instant by
    id. The orders' ids sort the other way round, as they were written."""
    orders = _keys(IdPrefix.ORDER)
    product = await _product(db_sessions)
    # The last order's expired first; the first two's at one instant.
    expiries = [AFTER, AFTER, INSTANT + timedelta(milliseconds=500), INSTANT]
    await _written_in_reverse(
        db_sessions,
        [
            Reservation(
                order_id=order_id,
                product_id=product,
                quantity=1,
                status=ReservationStatus.ACTIVE,
                expires_at=expires_at,
            )
            for order_id, expires_at in zip(orders, expiries, strict=True)
        ],
    )
    swept_at = AFTER + timedelta(seconds=1)
    async with db_sessions() as session:
        reservations = ReservationRepository(session)
        assert await reservations.expired_orders(swept_at, BATCH) == [orders[3], orders[2]]
        assert await reservations.expired_orders(swept_at, 3) == [orders[3], orders[2], orders[0]]


async def test_the_expiry_sweep_reads_by_index(db_session: AsyncSession) -> None:
    reservations = ReservationRepository(db_session)
    plans = await statement_plans(db_session, lambda: reservations.expired_orders(AFTER, BATCH))
    assert len(plans) == 1, plans
    assert "Index Scan using reservations_active_expiry_idx" in plans[0], plans


async def _claimed_not_started(
    sessions: SessionFactory, written: list[datetime], workflow_ids: list[str]
) -> None:
    """One event per batch, its delivery written at ``written`` and claimed by the
    batch's workflow, its start never recorded; the last batch written first."""
    async with transaction(sessions) as session:
        for at, workflow_id in reversed(list(zip(written, workflow_ids, strict=True))):
            event = OutboxEvent(
                type="tie.test",
                aggregate_type="tie",
                aggregate_id=f"tie_{workflow_id}",
                created_at=at,
                dispatched_at=at,
            )
            session.add(event)
            await session.flush()
            assert event.seq is not None
            session.add(
                EventDelivery(
                    event_id=event.id,
                    subscriber="tie-claimed",
                    event_type=event.type,
                    aggregate_type=event.aggregate_type,
                    aggregate_id=event.aggregate_id,
                    seq=event.seq,
                    created_at=at,
                    workflow_id=workflow_id,
                )
            )


async def test_batches_claimed_but_not_started_are_started_oldest_first(
    db_sessions: SessionFactory,
) -> None:
    """Four batches a pass claimed and never started, more than a pass starts again: the
    batches whose deliveries were written first go first, two of one instant by workflow
    id (the ids sort the other way round, and the newest batch's event came first), and
    each pass gets them in that order, the order it starts them in (not the rows')."""
    batches = sorted(f"events-tie-{new_id(IdPrefix.EVENT)}" for _ in range(4))
    written = [AFTER, AFTER, INSTANT + timedelta(milliseconds=500), INSTANT]
    await _claimed_not_started(db_sessions, written, batches)
    async with db_sessions() as session:
        every = await RelayRepository(session).claimed(len(batches))
    assert [batch.workflow_id for batch in every] == [batches[i] for i in (3, 2, 0, 1)]
    taken: list[list[str]] = []
    for _ in range(2):
        async with transaction(db_sessions) as session:
            work = RelayRepository(session)
            owed = await work.claimed(BATCH)
            await work.mark_started(owed)
        taken.append([batch.workflow_id for batch in owed])
    assert taken == [[batches[3], batches[2]], [batches[0], batches[1]]]


async def test_the_claimed_batches_are_read_by_index(db_session: AsyncSession) -> None:
    work = RelayRepository(db_session)
    plans = await statement_plans(db_session, lambda: work.claimed(BATCH))
    # Both reads of the table take the pending rows from an index of them.
    assert len(plans) == 1, plans
    assert plans[0].count("Index Scan using event_deliveries_") == 2, plans
    assert "Seq Scan" not in plans[0], plans
