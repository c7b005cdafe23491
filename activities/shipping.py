"""``ShipmentWorkflow``'s steps (queue ``orders``), over ``services.fulfillment.shipments``.

Built with the deployment's ``ShippingProvider``
(``integrations.shipping.factory.build_shipping_provider(settings)``).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.errors import ShopError
from services.fulfillment.shipments import ShipmentService
from services.fulfillment.tracking import ShipmentTracking
from temporal.errors import application_errors
from workflows.types.shipments import (
    BOOK_LABEL_ACTIVITY,
    MARK_DELAYED_ACTIVITY,
    RECORD_UPDATE_ACTIVITY,
    RECORD_UPDATES_ACTIVITY,
    REFUND_LABEL_ACTIVITY,
    BookedLabel,
    MarkDelayedInput,
    RecordedUpdate,
    RecordedUpdates,
    RecordUpdateInput,
    RecordUpdatesInput,
    ShipmentRef,
)


class ShippingActivities:
    def __init__(self, shipments: ShipmentService, tracking: ShipmentTracking) -> None:
        self._shipments = shipments
        self._tracking = tracking

    @activity.defn(name=BOOK_LABEL_ACTIVITY)
    async def book_label(self, input: ShipmentRef) -> BookedLabel:
        """Buy the parcel's label once (``shipping_rejected``: the carrier refused it)."""
        with application_errors():
            return await self._shipments.book_label(input.shipment_id)

    @activity.defn(name=RECORD_UPDATE_ACTIVITY)
    async def record_update(self, input: RecordUpdateInput) -> RecordedUpdate:
        with application_errors():
            return await self._tracking.record_update(input.shipment_id, input.tracker)

    @activity.defn(name=RECORD_UPDATES_ACTIVITY)
    async def record_updates(self, input: RecordUpdatesInput) -> RecordedUpdates:
        """The updates that waited, in one transaction (a local activity)."""
        with application_errors():
            recorded = await self._tracking.record_updates(input.shipment_id, input.trackers)
            return RecordedUpdates(updates=recorded)

    @activity.defn(name=MARK_DELAYED_ACTIVITY)
    async def mark_delayed(self, input: MarkDelayedInput) -> bool:
        with application_errors():
            return await self._tracking.mark_delayed(
                input.shipment_id, input.stall_hours, input.quiet_since
            )

    @activity.defn(name=REFUND_LABEL_ACTIVITY)
    async def refund_label(self, input: ShipmentRef) -> bool:
        """Compensation: refund an unused label and cancel the parcel."""
        try:
            return await self._shipments.refund_label(input.shipment_id)
        except ShopError as exc:
            # Even "final" provider answers are retried here: a compensation must finish.
            raise ApplicationError(exc.detail, exc.extra, type=exc.code) from exc
