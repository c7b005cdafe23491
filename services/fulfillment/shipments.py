"""A parcel's life after staff created it: its label, the carrier's updates, stalls.

``ShipmentWorkflow`` calls these through ``activities.shipping``; each is safe to repeat:

- ``book_label``: a shipment with a label answers it; otherwise the provider's shipment
  is created once (its id saved in a transaction of its own before anything is bought)
  and its label bought (the provider answers the label already bought on a repeat),
  then recorded with the shipment's fields, the fulfilment's and order's progress, the
  order's timeline and ``shipment.shipped``, in one transaction.
- ``record_update``: each tracking entry is appended once (its id is made of the
  tracker, the time and the status), the status only moves forward.
- ``mark_delayed``: flags a quiet parcel once and alerts staff (``shipment.delayed``).
- ``refund_label``: the compensation of a booking whose parcel never moved.

Every write transaction locks the fulfilment first, then the shipment (and
``FulfillmentProgress`` the order after them), so concurrent parcels of one order queue
up instead of deadlocking.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from core.errors import Conflict
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from integrations.shipping.provider import (
    CarrierStatus,
    Label,
    ParcelSpec,
    PostalAddress,
    ShipmentRequest,
    ShippingProvider,
    TrackerState,
    TrackingDetail,
)
from models.base import utcnow
from models.fulfillment import (
    Fulfillment,
    Shipment,
    ShipmentLabel,
    ShipmentStatus,
    TrackingEvent,
)
from services.fulfillment.progress import FulfillmentProgress
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.status import FINAL_SHIPMENT_STATUSES, shipment_can_move
from services.order_repository import OrderRepository
from workflows.types.shipments import BookedLabel, RecordedUpdate

log = logging.getLogger(__name__)

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


class ShipmentCancelled(Conflict):
    code = "shipment_cancelled"
    title = "The shipment was cancelled"


def tracking_event_id(tracker_id: str, detail: TrackingDetail) -> str:
    """The identity of one tracking entry: a repeated webhook, or a tracker's history
    sent again with every update, names the same entries."""
    return f"{tracker_id}:{detail.occurred_at.isoformat()}:{detail.status}"


def describe(detail: TrackingDetail) -> str:
    """``in transit — Boston, MA``: what the order's timeline says of an entry."""
    words = str(detail.status).replace("_", " ")
    return f"{words} — {detail.location}" if detail.location else words


def _address(data: dict[str, Any]) -> PostalAddress:
    """The fulfilment's copy of the order's address (``ShippingAddress``'s JSON)."""
    return PostalAddress(
        name=data.get("name"),
        street1=str(data["street"]),
        city=str(data["city"]),
        state=data.get("state"),
        zip=str(data["zip"]),
        country=str(data.get("country") or "US"),
        phone=data.get("phone"),
    )


def _booked(shipment: Shipment) -> BookedLabel:
    return BookedLabel(
        shipment_id=shipment.id,
        status=ShipmentStatus(shipment.status),
        carrier=shipment.carrier,
        tracking_code=shipment.tracking_code,
        tracking_url=shipment.tracking_url,
    )


class ShipmentService:
    def __init__(
        self, sessions: SessionFactory, provider: ShippingProvider, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.provider = provider
        self.settings = settings

    def ship_from(self) -> PostalAddress:
        s = self.settings
        return PostalAddress(
            name=s.ship_from_name,
            street1=s.ship_from_street,
            city=s.ship_from_city,
            state=s.ship_from_state,
            zip=s.ship_from_zip,
            country=s.ship_from_country,
        )

    @staticmethod
    async def _locked(session: AsyncSession, shipment_id: str) -> tuple[Fulfillment, Shipment]:
        """The shipment's fulfilment, then the shipment, both locked (in that order)."""
        repo = FulfillmentRepository(session)
        unlocked = await repo.require_shipment(shipment_id)
        fulfillment = await repo.require(unlocked.fulfillment_id, lock=True)
        shipment = await repo.require_shipment(shipment_id, lock=True)
        return fulfillment, shipment

    # --- the label ------------------------------------------------------------------

    async def book_label(self, shipment_id: str) -> BookedLabel:
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            shipment = await repo.require_shipment(shipment_id)
            if shipment.status == ShipmentStatus.CANCELLED:
                raise ShipmentCancelled(f"shipment {shipment_id} was cancelled")
            if shipment.status != ShipmentStatus.PENDING:
                return _booked(shipment)
            fulfillment = await repo.require(shipment.fulfillment_id)
            provider_shipment_id = shipment.provider_shipment_id
            request = ShipmentRequest(
                reference=shipment.id,
                to_address=_address(fulfillment.shipping_address),
                from_address=self.ship_from(),
                parcel=ParcelSpec(weight_oz=shipment.weight_oz),
            )
        if provider_shipment_id is None:
            provider_shipment_id = await self._create_at_provider(shipment_id, request)
        label = await self.provider.buy_label(provider_shipment_id)
        return await self._record_label(shipment_id, label)

    async def _create_at_provider(self, shipment_id: str, request: ShipmentRequest) -> str:
        """Create the provider's shipment (nothing is charged) and save its id at once,
        so that a retry buys this one's label. Two racing attempts keep the first id;
        the other provider shipment is left unbought."""
        created = await self.provider.create_shipment(request)
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            shipment = await repo.require_shipment(shipment_id, lock=True)
            if shipment.provider_shipment_id is None:
                shipment.provider_shipment_id = created.provider_shipment_id
                shipment.updated_at = utcnow()
                repo.stage(shipment)
            return shipment.provider_shipment_id

    async def _record_label(self, shipment_id: str, label: Label) -> BookedLabel:
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            fulfillment, shipment = await self._locked(session, shipment_id)
            await repo.add_label_once(
                ShipmentLabel(
                    shipment_id=shipment.id,
                    provider_shipment_id=label.provider_shipment_id,
                    carrier=label.carrier,
                    service=label.service,
                    tracking_code=label.tracking_code,
                    tracking_url=label.tracking_url,
                    label_url=label.label_url,
                    rate_amount=label.rate_amount,
                    currency=label.currency,
                )
            )
            if not shipment_can_move(
                ShipmentStatus(shipment.status), ShipmentStatus.LABEL_PURCHASED
            ):
                return _booked(shipment)  # a repeated attempt: recorded already
            now = utcnow()
            shipment.status = ShipmentStatus.LABEL_PURCHASED
            shipment.carrier = label.carrier
            shipment.service = label.service
            shipment.tracking_code = label.tracking_code
            shipment.tracking_url = label.tracking_url
            shipment.label_url = label.label_url
            shipment.provider_tracker_id = label.tracker_id
            shipment.shipped_at = now
            shipment.updated_at = now
            repo.stage(shipment)
            await session.flush()
            await FulfillmentProgress(session).refresh(fulfillment.id)
            orders = OrderRepository(session)
            order = await orders.require(shipment.order_id)
            parcel = await self._parcel_lines(repo, fulfillment.id, shipment.id)
            await orders.add_event(
                order.id,
                order.status,
                f"parcel {shipment.id} shipped with {label.carrier} {label.service}",
                {
                    "shipmentId": shipment.id,
                    "carrier": label.carrier,
                    "trackingCode": label.tracking_code,
                    "trackingUrl": label.tracking_url,
                },
            )
            await publish(
                session,
                EventType.SHIPMENT_SHIPPED,
                order.id,
                {
                    "orderId": order.id,
                    "userId": order.user_id,
                    "email": order.email,
                    "shipmentId": shipment.id,
                    "carrier": label.carrier,
                    "service": label.service,
                    "trackingCode": label.tracking_code,
                    "trackingUrl": label.tracking_url,
                    "items": parcel,
                    "shippedAt": now.isoformat(),
                },
            )
            return _booked(shipment)

    @staticmethod
    async def _parcel_lines(
        repo: FulfillmentRepository, fulfillment_id: str, shipment_id: str
    ) -> list[dict[str, Any]]:
        names = {ln.order_line_id: ln for ln in await repo.lines(fulfillment_id)}
        parcel = await repo.shipment_lines([shipment_id])
        return [
            {
                "productId": sl.product_id,
                "name": names[sl.order_line_id].name if sl.order_line_id in names else "",
                "quantity": sl.quantity,
            }
            for sl in parcel
        ]

    # --- the carrier's news -----------------------------------------------------------

    async def record_update(self, shipment_id: str, tracker: TrackerState) -> RecordedUpdate:
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            fulfillment, shipment = await self._locked(session, shipment_id)
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
        """Append the entries not seen before; answers those."""
        fresh: list[TrackingDetail] = []
        for detail in details:
            added = await repo.add_tracking_once(
                TrackingEvent(
                    shipment_id=shipment.id,
                    provider_event_id=tracking_event_id(tracker_id, detail),
                    carrier_status=str(detail.status),
                    message=detail.message,
                    location=detail.location,
                    occurred_at=detail.occurred_at,
                )
            )
            if added:
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
            _fulfillment, shipment = await self._locked(session, shipment_id)
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
                {"shipmentId": shipment.id, "trackingCode": shipment.tracking_code},
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

    # --- compensation -----------------------------------------------------------------

    async def refund_label(self, shipment_id: str) -> bool:
        """Refund the label of a parcel that never moved and cancel the shipment (its
        lines are free to go in another parcel). False if there is nothing to refund:
        no label was bought, or the carrier has the parcel (then it stays tracked)."""
        async with transaction(self.sessions) as session:
            shipment = await FulfillmentRepository(session).require_shipment(shipment_id)
            provider_shipment_id = shipment.provider_shipment_id
            if shipment.status != ShipmentStatus.LABEL_PURCHASED or provider_shipment_id is None:
                return False
        await self.provider.refund_label(provider_shipment_id)
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            fulfillment, shipment = await self._locked(session, shipment_id)
            if shipment.status != ShipmentStatus.LABEL_PURCHASED:
                return False
            now = utcnow()
            await repo.void_labels(shipment.id, now)
            # The refunded label leaves the parcel as if it had none: the one move back
            # from label_purchased that ``shipment_can_move`` does not allow a carrier.
            shipment.status = ShipmentStatus.CANCELLED
            shipment.updated_at = now
            repo.stage(shipment)
            await session.flush()
            await FulfillmentProgress(session).refresh(fulfillment.id)
            orders = OrderRepository(session)
            order = await orders.require(shipment.order_id)
            await orders.add_event(
                order.id,
                order.status,
                f"parcel {shipment.id} cancelled; its label was refunded",
                {"shipmentId": shipment.id, "trackingCode": shipment.tracking_code},
            )
            return True
