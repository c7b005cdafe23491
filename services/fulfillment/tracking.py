"""A parcel's carrier news: its tracking history, its forward-only status, its stalls.

- ``record_update`` (``record_updates``: several, one after the other, in one
  transaction): each tracking entry of a carrier update is appended once (its id is
  made of the tracker, the time and the status, so a repeated webhook or a tracker's
  history sent again adds nothing), and the status only moves forward: a late or
  repeated update never takes a parcel back. The fulfilment's and order's progress and
  the order's timeline follow in the same transaction. It answers the carrier's time of
  the parcel's latest entry, which the workflow's stall clock counts from.
- ``mark_delayed``: flags a quiet parcel once and alerts staff (``shipment.delayed``).

Every write transaction locks the fulfilment first, then the shipment (and
``FulfillmentProgress`` the order after them), so concurrent parcels of one order queue
up instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.events import EventType
from core.outbox import publish
from integrations.shipping.provider import CarrierStatus, TrackerState, TrackingDetail
from models.base import utcnow
from models.fulfillment import Fulfillment, Shipment, ShipmentStatus, TrackingEvent
from models.orders import TimelineAudience
from services.fulfillment.progress import FulfillmentProgress
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.status import FINAL_SHIPMENT_STATUSES, shipment_can_move
from services.order_repository import OrderRepository
from workflows.types.shipments import RecordedUpdate

# The carrier's word for where a parcel is, as our shipment status. ``unknown``, ``error``
# and ``cancelled`` (a carrier never cancels a parcel we paid for) move nothing.
STATUS_OF_CARRIER: dict[CarrierStatus, ShipmentStatus] = {
    CarrierStatus.PRE_TRANSIT: ShipmentStatus.LABEL_PURCHASED,
    CarrierStatus.IN_TRANSIT: ShipmentStatus.IN_TRANSIT,
    CarrierStatus.OUT_FOR_DELIVERY: ShipmentStatus.OUT_FOR_DELIVERY,
    CarrierStatus.DELIVERED: ShipmentStatus.DELIVERED,
    CarrierStatus.AVAILABLE_FOR_PICKUP: ShipmentStatus.AVAILABLE_FOR_PICKUP,
    CarrierStatus.FAILURE: ShipmentStatus.FAILURE,
    CarrierStatus.RETURN_TO_SENDER: ShipmentStatus.RETURN_TO_SENDER,
}


def tracking_event_id(tracker_id: str, detail: TrackingDetail) -> str:
    """The identity of one tracking entry: a repeated webhook, or a tracker's history
    sent again with every update, names the same entries."""
    return f"{tracker_id}:{detail.occurred_at.isoformat()}:{detail.status}"


def describe(detail: TrackingDetail) -> str:
    """``in transit — Boston, MA``: what the order's timeline says of an entry."""
    words = str(detail.status).replace("_", " ")
    return f"{words} — {detail.location}" if detail.location else words


async def locked_shipment(session: AsyncSession, shipment_id: str) -> tuple[Fulfillment, Shipment]:
    """The shipment's fulfilment, then the shipment, both locked (in that order)."""
    repo = FulfillmentRepository(session)
    unlocked = await repo.require_shipment(shipment_id)
    fulfillment = await repo.require(unlocked.fulfillment_id, lock=True)
    shipment = await repo.require_shipment(shipment_id, lock=True)
    return fulfillment, shipment


class ShipmentTracking:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    async def record_update(self, shipment_id: str, tracker: TrackerState) -> RecordedUpdate:
        [recorded] = await self.record_updates(shipment_id, [tracker])
        return recorded

    async def record_updates(
        self, shipment_id: str, trackers: Sequence[TrackerState]
    ) -> list[RecordedUpdate]:
        """Several updates of one parcel, in the order they came, in one transaction:
        each answers what ``record_update`` would have answered for it, one after the
        other (the workflow records what arrived while it was busy in one step)."""
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            fulfillment, shipment = await locked_shipment(session, shipment_id)
            newest = await repo.latest_tracking([shipment.id])
            last_event_at = newest[0].occurred_at if newest else None
            recorded: list[RecordedUpdate] = []
            for tracker in trackers:
                update = await self._record_one(
                    session, fulfillment, shipment, tracker, last_event_at
                )
                # The parcel's latest entry: every entry of this update is recorded now.
                for detail in tracker.details:
                    if last_event_at is None or detail.occurred_at > last_event_at:
                        last_event_at = detail.occurred_at
                recorded.append(update.model_copy(update={"last_event_at": last_event_at}))
            return recorded

    async def _record_one(
        self,
        session: AsyncSession,
        fulfillment: Fulfillment,
        shipment: Shipment,
        tracker: TrackerState,
        latest_before: datetime | None,
    ) -> RecordedUpdate:
        """One update, under the locks ``record_updates`` holds (its ``last_event_at``
        is the caller's; ``latest_before`` is the carrier's time of the parcel's latest
        entry before it)."""
        repo = FulfillmentRepository(session)
        fresh = await self._append(repo, shipment, tracker.tracker_id, tracker.details)
        current = ShipmentStatus(shipment.status)
        target = STATUS_OF_CARRIER.get(tracker.status)
        moved = target is not None and shipment_can_move(current, target)
        now = utcnow()
        if moved and target is not None:
            shipment.status = target
            if target is ShipmentStatus.DELIVERED:
                delivered = [d for d in tracker.details if d.status is CarrierStatus.DELIVERED]
                shipment.delivered_at = delivered[-1].occurred_at if delivered else now
        last = shipment.last_carrier_update_at
        shipment.last_carrier_update_at = (
            tracker.updated_at if last is None else max(last, tracker.updated_at)
        )
        if latest_before is None or any(d.occurred_at > latest_before for d in tracker.details):
            # News: the silence is over. A late or replayed webhook with no newer scan
            # leaves a flagged parcel flagged, as its workflow does (``_take``).
            shipment.delayed = False
        shipment.updated_at = now
        repo.stage(shipment)
        await session.flush()
        if moved:
            await FulfillmentProgress(session).refresh(fulfillment.id)
        orders = OrderRepository(session)
        order = await orders.require(shipment.order_id)
        for detail in fresh:
            await orders.add_event(
                order.id,
                order.status,
                f"parcel {shipment.id}: {describe(detail)}",
                {
                    "shipmentId": shipment.id,
                    "trackingCode": shipment.tracking_code,
                    "carrierStatus": str(detail.status),
                    "message": detail.message,
                    "location": detail.location,
                    "occurredAt": detail.occurred_at.isoformat(),
                },
                audience=TimelineAudience.CUSTOMER,
            )
        latest = tracker.details[-1] if tracker.details else None
        return RecordedUpdate(
            status=ShipmentStatus(shipment.status),
            moved=moved,
            new_events=len(fresh),
            detail=latest.message if latest is not None else None,
        )

    @staticmethod
    async def _append(
        repo: FulfillmentRepository,
        shipment: Shipment,
        tracker_id: str,
        details: Sequence[TrackingDetail],
    ) -> list[TrackingDetail]:
        """Append the entries not seen before; answers those, in the carrier's order."""
        events = {
            tracking_event_id(tracker_id, detail): TrackingEvent(
                shipment_id=shipment.id,
                provider_event_id=tracking_event_id(tracker_id, detail),
                carrier_status=str(detail.status),
                message=detail.message,
                location=detail.location,
                occurred_at=detail.occurred_at,
            )
            for detail in details
        }
        added = await repo.add_tracking_new(list(events.values()))
        fresh: list[TrackingDetail] = []
        for detail in details:
            event_id = tracking_event_id(tracker_id, detail)
            if event_id in added:
                added.discard(event_id)  # an entry repeated within one update counts once
                fresh.append(detail)
        return fresh

    async def mark_delayed(
        self, shipment_id: str, stall_hours: float, quiet_since: datetime
    ) -> bool:
        """Flag the parcel delayed and alert staff; False if it is already flagged (a
        repeated attempt) or has reached a final status. An update arriving meanwhile
        clears the flag when the workflow records it next."""
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            _fulfillment, shipment = await locked_shipment(session, shipment_id)
            if shipment.delayed or shipment.status in FINAL_SHIPMENT_STATUSES:
                return False
            now = utcnow()
            shipment.delayed = True
            shipment.delayed_at = now
            shipment.updated_at = now
            repo.stage(shipment)
            orders = OrderRepository(session)
            order = await orders.require(shipment.order_id)
            await orders.add_event(
                order.id,
                order.status,
                f"parcel {shipment.id} delayed: no carrier update for {stall_hours:g} h",
                {
                    "shipmentId": shipment.id,
                    "trackingCode": shipment.tracking_code,
                    "quietSince": quiet_since.isoformat(),
                    "stallHours": stall_hours,
                },
                # An alarm for staff to chase the carrier; the parcel's own tracking is
                # what the customer follows.
                audience=TimelineAudience.STAFF,
            )
            await publish(
                session,
                EventType.SHIPMENT_DELAYED,
                order.id,
                {
                    "orderId": order.id,
                    "shipmentId": shipment.id,
                    "fulfillmentId": shipment.fulfillment_id,
                    "status": str(shipment.status),
                    "carrier": shipment.carrier,
                    "trackingCode": shipment.tracking_code,
                    "trackingUrl": shipment.tracking_url,
                    "quietSince": quiet_since.isoformat(),
                    "stallHours": stall_hours,
                    "delayedAt": now.isoformat(),
                },
            )
            return True


async def shipment_of_tracker(session: AsyncSession, tracker_id: str) -> str | None:
    """The shipment a carrier tracker follows, or None (not ours, or not recorded yet)."""
    shipment = await FulfillmentRepository(session).shipment_by_tracker(tracker_id)
    return shipment.id if shipment is not None else None
