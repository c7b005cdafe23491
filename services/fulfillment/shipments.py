"""A parcel's label: bought once, or refunded when the parcel is cancelled unused.

``ShipmentWorkflow`` calls these through ``activities.shipping``; each is safe to repeat:

- ``book_label``: a shipment with a label answers it; otherwise the provider's shipment
  is created once (its id saved in a transaction of its own before anything is bought)
  and its label bought (the provider answers the label already bought on a repeat),
  then recorded with the shipment's fields, the fulfilment's and order's progress, the
  order's timeline and ``shipment.shipped``, in one transaction.
- ``refund_label``: the compensation of a booking whose parcel never moved. A void the
  carrier refuses because it has scanned the label (``LabelInUse``: the parcel is on its
  way) is not retried: the order's timeline says the parcel stays with the carrier, and
  its workflow keeps tracking it.

A parcel cancelled with its fulfilment is pending in the rows, yet a booking may have
bought its label: an attempt in flight while staff cancelled, or one whose answer was
lost. The booking that finds it cancelled (before buying or after) and the compensation
void whatever the provider's shipment carries (nothing bought: nothing to do).

The carrier's updates are ``services.fulfillment.tracking``'s. Write transactions lock
the fulfilment, then the shipment (``locked_shipment``).
"""

from __future__ import annotations

import logging
from typing import Any

from core.db import SessionFactory, transaction
from core.errors import Conflict
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from integrations.shipping.factory import ship_from_address
from integrations.shipping.provider import (
    Label,
    LabelInUse,
    ParcelSpec,
    PostalAddress,
    ShipmentRequest,
    ShippingProvider,
    ShippingRejected,
)
from models.base import utcnow
from models.fulfillment import (
    Shipment,
    ShipmentLabel,
    ShipmentStatus,
)
from models.orders import TimelineAudience
from services.fulfillment.progress import FulfillmentProgress
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.status import shipment_can_move
from services.fulfillment.tracking import locked_shipment
from services.order_repository import OrderRepository
from workflows.types.shipments import BookedLabel

log = logging.getLogger(__name__)


class ShipmentCancelled(Conflict):
    code = "shipment_cancelled"
    title = "The shipment was cancelled"


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

    # --- the label ------------------------------------------------------------------

    async def book_label(self, shipment_id: str) -> BookedLabel:
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            shipment = await repo.require_shipment(shipment_id)
            cancelled = shipment.status == ShipmentStatus.CANCELLED
            if not cancelled and shipment.status != ShipmentStatus.PENDING:
                return _booked(shipment)
            fulfillment = await repo.require(shipment.fulfillment_id)
            provider_shipment_id = shipment.provider_shipment_id
            request = ShipmentRequest(
                reference=shipment.id,
                to_address=_address(fulfillment.shipping_address),
                from_address=ship_from_address(self.settings),
                parcel=ParcelSpec(weight_oz=shipment.weight_oz),
            )
        if cancelled:
            # An earlier attempt may have bought its label (its answer lost) before staff
            # cancelled the fulfilment: voided before the booking gives up.
            if provider_shipment_id is not None:
                await self._void_cancelled(shipment_id, provider_shipment_id)
            raise ShipmentCancelled(f"shipment {shipment_id} was cancelled")
        if provider_shipment_id is None:
            provider_shipment_id = await self._create_at_provider(shipment_id, request)
        label = await self.provider.buy_label(provider_shipment_id)
        booked = await self._record_label(shipment_id, label)
        if booked.status is ShipmentStatus.CANCELLED:
            # Cancelled with its fulfilment while the carrier sold the label.
            await self._void_cancelled(shipment_id, provider_shipment_id)
        return booked

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
            fulfillment, shipment = await locked_shipment(session, shipment_id)
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
                audience=TimelineAudience.CUSTOMER,
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

    # --- compensation -----------------------------------------------------------------

    async def refund_label(self, shipment_id: str) -> bool:
        """Refund the label of a parcel that never moved and cancel the shipment (its
        lines are free to go in another parcel). True once the parcel is cancelled with
        a label refunded (a retry after a lost answer answers the same); False if there
        is nothing to refund: no label was bought, or the carrier has the parcel (its
        status moved on, or the void was refused ``LabelInUse``, which the order's
        timeline records; it stays tracked). A parcel cancelled with its fulfilment has
        whatever label a booking bought for it voided."""
        async with transaction(self.sessions) as session:
            shipment = await FulfillmentRepository(session).require_shipment(shipment_id)
            status, provider_shipment_id = shipment.status, shipment.provider_shipment_id
        if provider_shipment_id is None:
            return False
        if status == ShipmentStatus.CANCELLED:
            return await self._void_cancelled(shipment_id, provider_shipment_id)
        if status != ShipmentStatus.LABEL_PURCHASED:
            return False
        try:
            await self.provider.refund_label(provider_shipment_id)
        except LabelInUse as refused:
            await self._kept_by_carrier(shipment_id, refused)
            return False
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            fulfillment, shipment = await locked_shipment(session, shipment_id)
            if shipment.status != ShipmentStatus.LABEL_PURCHASED:
                return shipment.status == ShipmentStatus.CANCELLED
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
                # The label's refund is the shop's business; the parcel's status shows
                # the customer it is cancelled.
                audience=TimelineAudience.STAFF,
            )
            return True

    async def _kept_by_carrier(self, shipment_id: str, refused: LabelInUse) -> None:
        """The carrier scanned the label before the void: the parcel is on its way and
        stays as it is (tracked, its label paid for). The order's timeline says so, for
        staff (its workflow puts the fulfilment on hold with the reason)."""
        log.warning("label of shipment %s not refunded: %s", shipment_id, refused)
        async with transaction(self.sessions) as session:
            _, shipment = await locked_shipment(session, shipment_id)
            orders = OrderRepository(session)
            order = await orders.require(shipment.order_id)
            await orders.add_event(
                order.id,
                order.status,
                f"parcel {shipment.id} not cancelled: the carrier has scanned its label, "
                "so it cannot be voided; the parcel stays tracked",
                {
                    "shipmentId": shipment.id,
                    "trackingCode": shipment.tracking_code,
                    "refused": refused.code,
                },
                audience=TimelineAudience.STAFF,
                # Nothing else changes here: a retry of the step (its answer lost) would
                # say it again.
                key=f"label-kept:{shipment.id}",
            )

    async def _void_cancelled(self, shipment_id: str, provider_shipment_id: str) -> bool:
        """Void at the provider the label a booking bought for a parcel cancelled
        meanwhile, and mark its recorded labels voided. True if the parcel has a label
        voided. The provider answers at once when nothing was bought or a refund was
        asked for already; a label the carrier has scanned cannot be voided (the parcel
        moved: its tracking takes over), which is logged, not retried."""
        try:
            await self.provider.refund_label(provider_shipment_id)
        except ShippingRejected as refused:
            log.warning("label of cancelled shipment %s not voided: %s", shipment_id, refused)
            return False
        async with transaction(self.sessions) as session:
            repo = FulfillmentRepository(session)
            await repo.void_labels(shipment_id, utcnow())
            return any(label.voided_at is not None for label in await repo.labels(shipment_id))
