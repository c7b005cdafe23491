"""``FulfillmentService`` against PostgreSQL: open once, cut parcels within what is left,
hold/release with the staff event, cancel only before a label."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ShopError
from core.events import EventType
from models.fulfillment import FulfillmentStatus, ShipmentStatus, TrackingEvent
from models.orders import Order, OrderEvent, OrderStatus
from models.outbox import OutboxEvent
from services.fulfillment.progress import FulfillmentProgress
from services.fulfillment.reading import FulfillmentReader
from services.fulfillment.repository import FulfillmentNotFound, FulfillmentRepository
from services.fulfillment.service import FulfillmentService
from tests.fulfillment.factories import ADDRESS, queued_order
from workflows.types.fulfillment_orders import FulfillmentOpened, LineQuantity, ShipmentCreated


def lq(line_id: str, quantity: int) -> LineQuantity:
    return LineQuantity(order_line_id=line_id, quantity=quantity)


async def code_of(call: Awaitable[object]) -> str:
    with pytest.raises(ShopError) as raised:
        await call
    return raised.value.code


async def timeline(session: AsyncSession, order_id: str) -> list[str]:
    rows = await session.exec(
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id)
        .order_by(col(OrderEvent.created_at))
    )
    return [e.message for e in rows.all()]


async def events(session: AsyncSession, order_id: str, type: EventType) -> list[OutboxEvent]:
    rows = await session.exec(
        select(OutboxEvent).where(OutboxEvent.aggregate_id == order_id, OutboxEvent.type == type)
    )
    return list(rows.all())


async def test_open_copies_address_and_lines_once(db_session: AsyncSession) -> None:
    order, lines = await queued_order(db_session)
    service = FulfillmentService(db_session)
    first = await service.open(order.id, 40, "high")
    again = await service.open(order.id, 0, "normal")
    assert again.fulfillment_id == first.fulfillment_id
    assert first.status is FulfillmentStatus.OPEN
    assert {(ln.order_line_id, ln.quantity) for ln in first.lines} == {
        (ln.id, ln.quantity) for ln in lines
    }
    stored = await FulfillmentRepository(db_session).require(first.fulfillment_id)
    assert stored.shipping_address == ADDRESS
    assert (stored.priority, stored.priority_level) == (40, "high")
    assert (await timeline(db_session, order.id)).count("fulfilment order opened") == 1
    # What the workflow's history keeps names no one (the erasure does not reach it).
    assert (first.email, first.name) == ("", "")
    assert order.email not in first.model_dump_json()
    assert "Ada Lovelace" not in first.model_dump_json()
    # The attempt that inserts answers from what it inserted; a repeat reads it back.
    assert first.status == again.status
    assert first.lines == again.lines
    assert [ln.order_line_id for ln in first.lines] == [ln.id for ln in lines]


async def test_opened_again_it_answers_the_stored_hold_and_parcels(
    db_session: AsyncSession,
) -> None:
    """A workflow run reset to before what its earlier run did opens the fulfilment
    again: the answer carries the hold and the parcels as stored (status, lines), for
    the run to take; a first opening has none to carry."""
    order, (mugs, tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    assert (opened.hold_reason, opened.shipments) == (None, [])
    first = await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    second = await service.create_shipment(opened.fulfillment_id, [lq(tea.id, 1)])
    await service.hold(opened.fulfillment_id, "address to confirm")
    again = await service.open(order.id, 0, "normal")
    assert again.hold_reason == "address to confirm"
    assert again.status is FulfillmentStatus.ON_HOLD
    assert [(s.shipment_id, s.status, s.lines) for s in again.shipments] == [
        (first.shipment_id, ShipmentStatus.PENDING, [lq(mugs.id, 2)]),
        (second.shipment_id, ShipmentStatus.PENDING, [lq(tea.id, 1)]),
    ]


async def test_open_reads_back_nothing_it_just_inserted(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    order, _ = await queued_order(db_session)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await FulfillmentService(db_session).open(order.id, 0, "normal")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    reads = [s for s in statements if s.startswith("SELECT") and "FROM fulfillment" in s]
    assert reads == [], reads


async def test_shipments_take_only_what_is_left_and_move_it_to_in_progress(
    db_session: AsyncSession,
) -> None:
    order, (mugs, tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    created = await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 1)], 20.0)
    assert (created.status, created.fulfillment_status) == (
        ShipmentStatus.PENDING,
        FulfillmentStatus.IN_PROGRESS,
    )
    # The same shipment id answers the same shipment (a retried activity).
    named = await service.create_shipment(
        opened.fulfillment_id, [lq(tea.id, 1)], shipment_id="shp_01TESTSAMEID000000000000A"
    )
    repeat = await service.create_shipment(
        opened.fulfillment_id, [lq(tea.id, 1)], shipment_id="shp_01TESTSAMEID000000000000A"
    )
    assert repeat == named
    assert (
        await code_of(
            service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 1), lq(mugs.id, 1)])
        )
        == "quantity_exceeds_unassigned"
    )
    assert (
        await code_of(service.create_shipment(opened.fulfillment_id, [lq(tea.id, 1)]))
        == "quantity_exceeds_unassigned"
    )
    assert (
        await code_of(service.create_shipment(opened.fulfillment_id, [lq("oline_elsewhere", 1)]))
        == "unknown_order_line"
    )
    assert await code_of(service.create_shipment("ful_missing", [lq(mugs.id, 1)])) == (
        "fulfillment_not_found"
    )
    view = await FulfillmentReader(db_session).one(opened.fulfillment_id)
    assert view.status is FulfillmentStatus.IN_PROGRESS
    assert {ln.order_line_id: ln.unassigned for ln in view.lines} == {mugs.id: 1, tea.id: 0}
    assert [s.weight_oz for s in view.shipments] == [20.0, 16.0]
    assert (await timeline(db_session, order.id)).count("shipment created") == 2


async def test_hold_publishes_for_staff_and_release_derives_the_status_again(
    db_session: AsyncSession,
) -> None:
    order, (mugs, _tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    held = await service.hold(opened.fulfillment_id, "address to confirm")
    assert (held.status, held.changed) == (FulfillmentStatus.ON_HOLD, True)
    assert (await service.hold(opened.fulfillment_id, "another")).changed is False
    [event] = await events(db_session, order.id, EventType.FULFILLMENT_ON_HOLD)
    assert event.data["reason"] == "address to confirm"
    assert event.data["fulfillmentId"] == opened.fulfillment_id
    assert await code_of(service.create_shipment(opened.fulfillment_id, [lq(_tea.id, 1)])) == (
        "fulfillment_on_hold"
    )
    released = await service.release(opened.fulfillment_id)
    assert (released.status, released.changed) == (FulfillmentStatus.IN_PROGRESS, True)
    assert (await service.release(opened.fulfillment_id)).changed is False
    stored = await FulfillmentRepository(db_session).require(opened.fulfillment_id)
    assert (stored.hold_reason, stored.held_at) == (None, None)


async def test_a_hold_repeated_after_a_lost_answer_answers_as_the_first(
    db_session: AsyncSession,
) -> None:
    """The hold step committed and its answer was lost (a local activity's worker died
    before its marker was recorded): the retry must still say the hold is this one, or
    the workflow never learns its reason and refuses staff's release
    (``fulfillment_not_on_hold``) of a fulfilment the rows keep on hold."""
    order, (mugs, _tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    first = await service.hold(opened.fulfillment_id, "address to confirm")
    again = await service.hold(opened.fulfillment_id, "address to confirm")
    assert again == first
    assert (again.status, again.changed) == (FulfillmentStatus.ON_HOLD, True)
    assert len(await events(db_session, order.id, EventType.FULFILLMENT_ON_HOLD)) == 1
    assert (await timeline(db_session, order.id)).count("fulfilment on hold") == 1


async def test_a_keyed_hold_is_placed_once_even_after_staff_released_it(
    db_session: AsyncSession,
) -> None:
    """A parcel's exception holds the fulfilment under a key; told of it again (a reset
    workflow run) after staff released that hold, the step changes nothing: no second
    hold, no second ``fulfillment.on_hold`` (the warehouse's email), one timeline entry."""
    order, (mugs, _tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    first = await service.hold(opened.fulfillment_id, "shipment shp_1: failure", "hold:shp_1:1")
    assert (first.status, first.changed) == (FulfillmentStatus.ON_HOLD, True)
    await service.release(opened.fulfillment_id)
    again = await service.hold(opened.fulfillment_id, "shipment shp_1: failure", "hold:shp_1:1")
    assert (again.status, again.changed) == (FulfillmentStatus.IN_PROGRESS, False)
    stored = await FulfillmentRepository(db_session).require(opened.fulfillment_id)
    assert stored.hold_reason is None
    assert len(await events(db_session, order.id, EventType.FULFILLMENT_ON_HOLD)) == 1
    assert (await timeline(db_session, order.id)).count("fulfilment on hold") == 1
    # Another exception has its own key: it holds.
    other = await service.hold(opened.fulfillment_id, "shipment shp_1: failure", "hold:shp_1:2")
    assert other.changed is True


async def test_cancel_cancels_pending_parcels_but_not_once_a_label_exists(
    db_session: AsyncSession,
) -> None:
    order, (mugs, tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    pending = await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    cancelled = await service.cancel(opened.fulfillment_id, "customer asked")
    assert cancelled.cancelled_shipments == [pending.shipment_id]
    assert cancelled.status is FulfillmentStatus.CANCELLED
    repo = FulfillmentRepository(db_session)
    assert (await repo.require_shipment(pending.shipment_id)).status == ShipmentStatus.CANCELLED
    assert (await service.cancel(opened.fulfillment_id, None)).status is FulfillmentStatus.CANCELLED
    assert await code_of(service.create_shipment(opened.fulfillment_id, [lq(tea.id, 1)])) == (
        "fulfillment_closed"
    )
    # The order's own undoing is the workflow's next steps, not this one's.
    assert (
        await db_session.get_one(type(order), order.id)
    ).status == OrderStatus.FULFILLMENT_QUEUED

    other, (line, _) = await queued_order(db_session)
    opened = await service.open(other.id, 0, "normal")
    labelled = await service.create_shipment(opened.fulfillment_id, [lq(line.id, 2)])
    shipment = await repo.require_shipment(labelled.shipment_id, lock=True)
    shipment.status = ShipmentStatus.LABEL_PURCHASED  # as the ShipmentWorkflow's booking does
    repo.stage(shipment)
    await db_session.flush()
    assert await code_of(service.cancel(opened.fulfillment_id, None)) == "fulfillment_has_labels"
    stored = await repo.require(opened.fulfillment_id)
    assert stored.status is not FulfillmentStatus.CANCELLED


async def test_the_customer_sees_parcels_without_label_urls_and_only_their_own(
    db_session: AsyncSession,
) -> None:
    order, (mugs, _tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    created = await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    reader = FulfillmentReader(db_session)
    [parcel] = await reader.order_shipments(order.id)
    assert parcel.id == created.shipment_id
    assert "labelUrl" not in parcel.model_dump(by_alias=True)
    detail = await reader.order_shipment(order.id, created.shipment_id)
    assert (detail.tracking, detail.latest_tracking) == ([], None)
    repo = FulfillmentRepository(db_session)
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for n, status in enumerate(["in_transit", "pre_transit", "out_for_delivery"]):
        # Stored out of order (a late webhook): read back by the carrier's time.
        at = start + timedelta(
            hours={"pre_transit": 0, "in_transit": 5, "out_for_delivery": 9}[status]
        )
        await repo.add_tracking_once(
            TrackingEvent(
                shipment_id=created.shipment_id,
                provider_event_id=f"evt_{created.shipment_id}_{n}",
                carrier_status=status,
                message=status.replace("_", " "),
                location="Boston, MA",
                occurred_at=at,
            )
        )
    detail = await reader.order_shipment(order.id, created.shipment_id)
    assert [e.status for e in detail.tracking] == ["pre_transit", "in_transit", "out_for_delivery"]
    [parcel] = await reader.order_shipments(order.id)
    assert parcel.latest_tracking is not None
    assert parcel.latest_tracking.status == "out_for_delivery"
    other, _ = await queued_order(db_session)
    assert await code_of(reader.order_shipment(other.id, created.shipment_id)) == (
        "shipment_not_found"
    )
    page, total = await reader.queue(FulfillmentStatus.IN_PROGRESS, offset=0, limit=100)
    assert total >= 1
    assert opened.fulfillment_id in [f.id for f in page]
    with pytest.raises(FulfillmentNotFound):
        await reader.one("ful_missing")


async def _two_parcels(
    db_session: AsyncSession,
) -> tuple[Order, FulfillmentService, FulfillmentOpened, ShipmentCreated, ShipmentCreated]:
    """A queued order's fulfilment split in two parcels: two mugs, then the tea."""
    order, (mugs, tea) = await queued_order(db_session)
    service = FulfillmentService(db_session)
    opened = await service.open(order.id, 0, "normal")
    first = await service.create_shipment(opened.fulfillment_id, [lq(mugs.id, 2)])
    second = await service.create_shipment(opened.fulfillment_id, [lq(tea.id, 1)])
    return order, service, opened, first, second


async def test_split_parcels_deliver_independently_and_the_order_is_delivered_with_the_last(
    db_session: AsyncSession,
) -> None:
    order, service, opened, first, second = await _two_parcels(db_session)
    repo = FulfillmentRepository(db_session)

    async def parcel_is(shipment_id: str, status: ShipmentStatus) -> tuple[str, str]:
        """As the parcel's ShipmentWorkflow records a carrier update."""
        shipment = await repo.require_shipment(shipment_id, lock=True)
        shipment.status = status
        repo.stage(shipment)
        fulfilment = await FulfillmentProgress(db_session).refresh(opened.fulfillment_id)
        stored = await db_session.get_one(type(order), order.id)
        return str(fulfilment.status), str(stored.status)

    assert await parcel_is(first.shipment_id, ShipmentStatus.IN_TRANSIT) == (
        "partially_shipped",
        "partially_shipped",
    )
    assert await parcel_is(first.shipment_id, ShipmentStatus.DELIVERED) == (
        "partially_shipped",
        "partially_shipped",
    )
    assert await parcel_is(second.shipment_id, ShipmentStatus.IN_TRANSIT) == ("shipped", "shipped")
    assert await events(db_session, order.id, EventType.ORDER_DELIVERED) == []
    assert await parcel_is(second.shipment_id, ShipmentStatus.DELIVERED) == (
        "delivered",
        "delivered",
    )
    [delivered] = await events(db_session, order.id, EventType.ORDER_DELIVERED)
    assert delivered.data["fulfillmentId"] == opened.fulfillment_id
    # Delivered parcels cannot be cancelled, so neither can the fulfilment.
    assert await code_of(service.cancel(opened.fulfillment_id, None)) == "fulfillment_has_labels"


async def test_the_order_follows_parcels_another_transaction_moved_since_this_one_read_them(
    db_session: AsyncSession,
) -> None:
    """Two parcels shipping at once: the transaction that records the second may have
    loaded the first before the fulfilment's lock, and another transaction shipped it
    since. The order's status is worked out from the parcels as committed, not as this
    session loaded them (stale, the order stayed partially shipped)."""
    order, _service, opened, first, second = await _two_parcels(db_session)
    repo = FulfillmentRepository(db_session)
    loaded = {s.id: s for s in await repo.shipments(opened.fulfillment_id)}
    assert loaded[first.shipment_id].status == ShipmentStatus.PENDING
    # The other transaction, as this session's identity map never hears of it.
    await db_session.exec(  # type: ignore[call-overload]
        text("UPDATE shipments SET status = 'in_transit' WHERE id = :id").bindparams(
            id=first.shipment_id
        )
    )
    shipment = await repo.require_shipment(second.shipment_id, lock=True)
    shipment.status = ShipmentStatus.IN_TRANSIT
    repo.stage(shipment)
    fulfilment = await FulfillmentProgress(db_session).refresh(opened.fulfillment_id)
    stored = await db_session.get_one(type(order), order.id)
    assert (str(fulfilment.status), str(stored.status)) == ("shipped", "shipped")
