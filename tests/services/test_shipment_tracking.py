"""Carrier updates against PostgreSQL: the tracking history dedupes, a parcel only moves
forward, the order's timeline tells every update, and split parcels of one order are
delivered independently, the order only when every line is."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from core.events import EventType
from integrations.shipping.provider import CarrierStatus, TrackerState, TrackingDetail
from models.fulfillment import FulfillmentStatus, Shipment, ShipmentStatus
from models.orders import OrderStatus
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.tracking import ShipmentTracking
from services.order_repository import OrderRepository
from tests.fulfillment_rows import order_in_parcels, published, timeline

PRE, TRANSIT, OUT, DELIVERED = (
    CarrierStatus.PRE_TRANSIT,
    CarrierStatus.IN_TRANSIT,
    CarrierStatus.OUT_FOR_DELIVERY,
    CarrierStatus.DELIVERED,
)
PLACES = {PRE: None, TRANSIT: "Boston, MA", OUT: "Cambridge, MA", DELIVERED: "Cambridge, MA"}


def tracker(shipment_id: str, *statuses: CarrierStatus) -> TrackerState:
    """The tracker as EasyPost sends it: the whole history so far, the last current."""
    details = [
        TrackingDetail(
            status=s,
            message=str(s).replace("_", " ").capitalize(),
            location=PLACES.get(s),
            occurred_at=datetime(2026, 12, 1, 8 + i, tzinfo=UTC),
        )
        for i, s in enumerate(statuses)
    ]
    return TrackerState(
        tracker_id=f"trk_{shipment_id}",
        tracking_code=f"9400{shipment_id}",
        status=statuses[-1],
        shipment_id=None,
        details=details,
        updated_at=details[-1].occurred_at,
    )


async def statuses(sessions: SessionFactory, order_id: str) -> tuple[str, str, list[str]]:
    """(order status, fulfilment status, each parcel's status), as committed."""
    async with sessions() as session:
        repo = FulfillmentRepository(session)
        order = await OrderRepository(session).require(order_id)
        fulfillment = await repo.for_order(order_id)
        assert fulfillment is not None
        parcels = await repo.shipments(fulfillment.id)
        return str(order.status), str(fulfillment.status), [str(s.status) for s in parcels]


async def saved(sessions: SessionFactory, shipment_id: str) -> Shipment:
    """The shipment as committed (the test's own session holds the row it wrote)."""
    async with sessions() as session:
        return await FulfillmentRepository(session).require_shipment(shipment_id)


async def test_updates_append_history_once_and_move_the_parcel_forward_only(
    db_sessions: SessionFactory, db_session: AsyncSession
) -> None:
    made = await order_in_parcels(db_session, status=ShipmentStatus.LABEL_PURCHASED)
    [shipment] = made.shipments
    tracking = ShipmentTracking(db_sessions)

    first = await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT))
    assert (first.status, first.moved, first.new_events) == (ShipmentStatus.IN_TRANSIT, True, 2)
    later = await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT, OUT))
    assert (later.status, later.moved, later.new_events) == (
        ShipmentStatus.OUT_FOR_DELIVERY,
        True,
        1,
    )
    # The same webhook again, then an older one arriving late: nothing new, no step back.
    again = await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT, OUT))
    late = await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT))
    assert (again.moved, again.new_events) == (False, 0)
    assert (late.status, late.moved, late.new_events) == (ShipmentStatus.OUT_FOR_DELIVERY, False, 0)
    # The carrier's time of the parcel's latest scan (the stall clock's start), even after
    # the late one: the 09:00 scan of in transit, then 10:00 out for delivery.
    assert first.last_event_at == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert later.last_event_at == late.last_event_at == datetime(2026, 12, 1, 10, tzinfo=UTC)

    history = await FulfillmentRepository(db_session).tracking(shipment.id)
    assert [e.carrier_status for e in history] == ["pre_transit", "in_transit", "out_for_delivery"]
    assert history[1].provider_event_id == (
        f"trk_{shipment.id}:2026-12-01T09:00:00+00:00:in_transit"
    )
    assert (history[1].message, history[1].location) == ("In transit", "Boston, MA")
    row = await saved(db_sessions, shipment.id)
    assert row.status == ShipmentStatus.OUT_FOR_DELIVERY
    assert row.last_carrier_update_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    entries = await timeline(db_session, made.order.id)
    assert [e for e in entries if e.startswith(f"parcel {shipment.id}:")] == [
        f"parcel {shipment.id}: pre transit",
        f"parcel {shipment.id}: in transit — Boston, MA",
        f"parcel {shipment.id}: out for delivery — Cambridge, MA",
    ]


async def test_split_parcels_deliver_independently_and_the_order_only_when_every_line_is(
    db_sessions: SessionFactory, db_session: AsyncSession
) -> None:
    # Mugs in one parcel, tea in the other.
    made = await order_in_parcels(
        db_session, parcels=[[(0, 2)], [(1, 1)]], status=ShipmentStatus.LABEL_PURCHASED
    )
    mugs, tea = made.shipments
    order_id = made.order.id
    tracking = ShipmentTracking(db_sessions)

    await tracking.record_update(mugs.id, tracker(mugs.id, PRE, TRANSIT, OUT, DELIVERED))
    assert await statuses(db_sessions, order_id) == (
        OrderStatus.SHIPPED,
        FulfillmentStatus.SHIPPED,
        ["delivered", "label_purchased"],
    )
    assert await published(db_session, order_id, EventType.ORDER_DELIVERED) == []

    await tracking.record_update(tea.id, tracker(tea.id, PRE, TRANSIT))
    assert (await statuses(db_sessions, order_id))[0] == OrderStatus.SHIPPED
    await tracking.record_update(tea.id, tracker(tea.id, PRE, TRANSIT, DELIVERED))
    assert await statuses(db_sessions, order_id) == (
        OrderStatus.DELIVERED,
        FulfillmentStatus.DELIVERED,
        ["delivered", "delivered"],
    )
    # Told once, even when the last parcel's delivery is reported again.
    await tracking.record_update(tea.id, tracker(tea.id, PRE, TRANSIT, DELIVERED))
    [delivered] = await published(db_session, order_id, EventType.ORDER_DELIVERED)
    assert delivered.data["orderId"] == order_id
    row = await saved(db_sessions, tea.id)
    assert row.delivered_at == datetime(2026, 12, 1, 10, tzinfo=UTC)


async def test_a_stalled_parcel_is_flagged_once_and_news_clears_the_flag(
    db_sessions: SessionFactory, db_session: AsyncSession
) -> None:
    made = await order_in_parcels(db_session, status=ShipmentStatus.IN_TRANSIT)
    [shipment] = made.shipments
    tracking = ShipmentTracking(db_sessions)
    quiet = datetime(2026, 12, 1, 9, tzinfo=UTC)

    assert await tracking.mark_delayed(shipment.id, 72, quiet) is True
    assert await tracking.mark_delayed(shipment.id, 72, quiet) is False  # a repeated attempt
    row = await saved(db_sessions, shipment.id)
    assert row.delayed is True
    assert row.delayed_at is not None
    [alert] = await published(db_session, made.order.id, EventType.SHIPMENT_DELAYED)
    assert alert.data["shipmentId"] == shipment.id
    assert alert.data["stallHours"] == 72
    assert alert.data["trackingCode"] == shipment.tracking_code
    assert f"parcel {shipment.id} delayed: no carrier update for 72 h" in await timeline(
        db_session, made.order.id
    )

    await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT, OUT))
    row = await saved(db_sessions, shipment.id)
    assert row.delayed is False


async def test_a_delivered_parcel_is_never_flagged(
    db_sessions: SessionFactory, db_session: AsyncSession
) -> None:
    made = await order_in_parcels(db_session, status=ShipmentStatus.DELIVERED)
    tracking = ShipmentTracking(db_sessions)
    assert await tracking.mark_delayed(made.shipments[0].id, 72, datetime.now(UTC)) is False
    assert await published(db_session, made.order.id, EventType.SHIPMENT_DELAYED) == []


async def test_updates_recorded_together_answer_as_one_after_the_other(
    db_sessions: SessionFactory, db_session: AsyncSession
) -> None:
    """``record_updates`` (the workflow's one step for the updates that waited): one
    transaction, the same answers, rows and timeline as each update on its own, a
    redelivery and a late update in the batch included."""
    made = await order_in_parcels(db_session, status=ShipmentStatus.LABEL_PURCHASED)
    [shipment] = made.shipments
    sid = shipment.id
    tracking = ShipmentTracking(db_sessions)

    answers = await tracking.record_updates(
        sid,
        [
            tracker(sid, PRE, TRANSIT),
            tracker(sid, PRE, TRANSIT, OUT),
            tracker(sid, PRE, TRANSIT, OUT),  # the same again
            tracker(sid, PRE, TRANSIT),  # an older one, late
            tracker(sid, PRE, TRANSIT, OUT, DELIVERED),
        ],
    )
    assert [(a.status, a.moved, a.new_events) for a in answers] == [
        (ShipmentStatus.IN_TRANSIT, True, 2),
        (ShipmentStatus.OUT_FOR_DELIVERY, True, 1),
        (ShipmentStatus.OUT_FOR_DELIVERY, False, 0),
        (ShipmentStatus.OUT_FOR_DELIVERY, False, 0),
        (ShipmentStatus.DELIVERED, True, 1),
    ]
    hour = [datetime(2026, 12, 1, h, tzinfo=UTC) for h in (9, 10, 10, 10, 11)]
    assert [a.last_event_at for a in answers] == hour
    assert answers[-1].detail == "Delivered"

    history = await FulfillmentRepository(db_session).tracking(sid)
    assert [e.carrier_status for e in history] == [
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert await statuses(db_sessions, made.order.id) == (
        OrderStatus.DELIVERED,
        FulfillmentStatus.DELIVERED,
        ["delivered"],
    )
    entries = await timeline(db_session, made.order.id)
    assert [e for e in entries if e.startswith(f"parcel {sid}:")] == [
        f"parcel {sid}: pre transit",
        f"parcel {sid}: in transit — Boston, MA",
        f"parcel {sid}: out for delivery — Cambridge, MA",
        f"parcel {sid}: delivered — Cambridge, MA",
    ]
    [delivered] = await published(db_session, made.order.id, EventType.ORDER_DELIVERED)
    assert delivered.data["orderId"] == made.order.id
    # The whole batch again (a retried step) adds nothing and moves nothing.
    again = await tracking.record_updates(sid, [tracker(sid, PRE, TRANSIT, OUT, DELIVERED)])
    assert [(a.moved, a.new_events) for a in again] == [(False, 0)]
    assert len(await FulfillmentRepository(db_session).tracking(sid)) == 4


async def test_a_late_update_with_no_newer_scan_leaves_a_flagged_parcel_flagged(
    db_sessions: SessionFactory, db_session: AsyncSession
) -> None:
    """A webhook that is late, replayed or out of order (no entry newer than the parcel's
    latest) does not end the silence: the parcel stays ``delayed``, as its workflow keeps
    it (no second alert there), until a newer scan comes."""
    made = await order_in_parcels(db_session, status=ShipmentStatus.LABEL_PURCHASED)
    [shipment] = made.shipments
    tracking = ShipmentTracking(db_sessions)
    await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT))
    assert await tracking.mark_delayed(shipment.id, 72, datetime(2026, 12, 1, 9, tzinfo=UTC))

    late = await tracking.record_update(shipment.id, tracker(shipment.id, PRE))
    again = await tracking.record_updates(shipment.id, [tracker(shipment.id, PRE, TRANSIT)])
    assert (late.new_events, again[0].new_events) == (0, 0)
    assert (await saved(db_sessions, shipment.id)).delayed is True

    await tracking.record_update(shipment.id, tracker(shipment.id, PRE, TRANSIT, OUT))
    assert (await saved(db_sessions, shipment.id)).delayed is False
