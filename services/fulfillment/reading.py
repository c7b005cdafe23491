"""Read models of fulfilment: the warehouse's fulfilment orders, and the customer's
parcels with their tracking. Reads only; every query is the repository's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from models.fulfillment import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLine,
    TrackingEvent,
)
from models.fulfillment_api import (
    FulfillmentLinePublic,
    FulfillmentPublic,
    OrderShipment,
    OrderShipmentDetail,
    ShipmentLinePublic,
    ShipmentSummary,
    TrackingEventPublic,
)
from models.orders import ShippingAddress
from services.fulfillment.repository import FulfillmentRepository, ShipmentNotFound
from services.fulfillment.status import line_progress


def _tracking(event: TrackingEvent) -> TrackingEventPublic:
    return TrackingEventPublic(
        status=event.carrier_status,
        message=event.message,
        location=event.location,
        occurred_at=event.occurred_at,
    )


def _parcel_lines(lines: Sequence[ShipmentLine]) -> list[ShipmentLinePublic]:
    return [
        ShipmentLinePublic(
            order_line_id=ln.order_line_id, product_id=ln.product_id, quantity=ln.quantity
        )
        for ln in lines
    ]


class FulfillmentReader:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = FulfillmentRepository(session)

    async def queue(
        self,
        status: FulfillmentStatus | None,
        *,
        offset: int,
        limit: int,
        order_id: str | None = None,
    ) -> tuple[list[FulfillmentPublic], int]:
        """The warehouse's list, most urgent first, and the total across pages."""
        rows = await self.repo.queue(status, offset=offset, limit=limit, order_id=order_id)
        total = await self.repo.count(status, order_id)
        ids = [f.id for f in rows]
        lines = await self.repo.lines_of(ids)
        shipments = await self.repo.shipments_of(ids)
        parcels = await self.repo.shipment_lines([s.id for s in shipments])
        return [self._render(f, lines, shipments, parcels) for f in rows], total

    async def one(self, fulfillment_id: str) -> FulfillmentPublic:
        fulfillment = await self.repo.require(fulfillment_id)
        shipments = await self.repo.shipments(fulfillment.id)
        return self._render(
            fulfillment,
            await self.repo.lines(fulfillment.id),
            shipments,
            await self.repo.shipment_lines([s.id for s in shipments]),
        )

    async def summary(self, shipment_id: str) -> ShipmentSummary:
        shipment = await self.repo.require_shipment(shipment_id)
        return self._summary(shipment, await self.repo.shipment_lines([shipment.id]))

    @staticmethod
    def _summary(shipment: Shipment, lines: Sequence[ShipmentLine]) -> ShipmentSummary:
        return ShipmentSummary(
            id=shipment.id,
            status=shipment.status,
            delayed=shipment.delayed,
            weight_oz=shipment.weight_oz,
            carrier=shipment.carrier,
            service=shipment.service,
            tracking_code=shipment.tracking_code,
            tracking_url=shipment.tracking_url,
            label_url=shipment.label_url,
            lines=_parcel_lines(lines),
            shipped_at=shipment.shipped_at,
            delivered_at=shipment.delivered_at,
            created_at=shipment.created_at,
        )

    def _render(
        self,
        fulfillment: Fulfillment,
        all_lines: Sequence[FulfillmentLine],
        all_shipments: Sequence[Shipment],
        all_parcels: Sequence[ShipmentLine],
    ) -> FulfillmentPublic:
        lines = [ln for ln in all_lines if ln.fulfillment_id == fulfillment.id]
        shipments = [s for s in all_shipments if s.fulfillment_id == fulfillment.id]
        of_shipment: dict[str, list[ShipmentLine]] = defaultdict(list)
        for parcel_line in all_parcels:
            of_shipment[parcel_line.shipment_id].append(parcel_line)
        parcels = [pl for s in shipments for pl in of_shipment[s.id]]
        progress = {p.order_line_id: p for p in line_progress(lines, shipments, parcels)}
        return FulfillmentPublic(
            id=fulfillment.id,
            order_id=fulfillment.order_id,
            status=fulfillment.status,
            priority=fulfillment.priority,
            priority_level=fulfillment.priority_level,
            hold_reason=fulfillment.hold_reason,
            held_at=fulfillment.held_at,
            shipping_address=ShippingAddress.model_validate(fulfillment.shipping_address),
            lines=[
                FulfillmentLinePublic(
                    order_line_id=ln.order_line_id,
                    product_id=ln.product_id,
                    sku=ln.sku,
                    name=ln.name,
                    quantity=ln.quantity,
                    shipped=progress[ln.order_line_id].shipped,
                    delivered=progress[ln.order_line_id].delivered,
                    unassigned=progress[ln.order_line_id].unassigned,
                )
                for ln in lines
            ],
            shipments=[self._summary(s, of_shipment[s.id]) for s in shipments],
            cancelled_at=fulfillment.cancelled_at,
            created_at=fulfillment.created_at,
            updated_at=fulfillment.updated_at,
        )

    # --- the customer's parcels ---------------------------------------------------------

    async def order_shipments(self, order_id: str) -> list[OrderShipment]:
        shipments = await self.repo.shipments_of_order(order_id)
        ids = [s.id for s in shipments]
        of_shipment: dict[str, list[ShipmentLine]] = defaultdict(list)
        for parcel_line in await self.repo.shipment_lines(ids):
            of_shipment[parcel_line.shipment_id].append(parcel_line)
        latest = {e.shipment_id: e for e in await self.repo.latest_tracking(ids)}
        return [
            OrderShipment.model_validate(
                self._customer_fields(s, of_shipment[s.id], latest.get(s.id))
            )
            for s in shipments
        ]

    async def order_shipment(self, order_id: str, shipment_id: str) -> OrderShipmentDetail:
        """One parcel of ``order_id`` with its whole tracking history (oldest first)."""
        shipment = await self.repo.shipment(shipment_id)
        if shipment is None or shipment.order_id != order_id:
            raise ShipmentNotFound(f"no shipment {shipment_id} in order {order_id}")
        history = await self.repo.tracking(shipment.id)
        fields = self._customer_fields(
            shipment,
            await self.repo.shipment_lines([shipment.id]),
            history[-1] if history else None,
        )
        return OrderShipmentDetail.model_validate(
            fields | {"tracking": [_tracking(e) for e in history]}
        )

    @staticmethod
    def _customer_fields(
        shipment: Shipment, lines: Sequence[ShipmentLine], latest: TrackingEvent | None
    ) -> dict[str, object]:
        return {
            "id": shipment.id,
            "status": shipment.status,
            "delayed": shipment.delayed,
            "carrier": shipment.carrier,
            "tracking_code": shipment.tracking_code,
            "tracking_url": shipment.tracking_url,
            "lines": _parcel_lines(lines),
            "shipped_at": shipment.shipped_at,
            "delivered_at": shipment.delivered_at,
            "latest_tracking": _tracking(latest) if latest is not None else None,
        }
