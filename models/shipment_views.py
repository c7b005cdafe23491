"""The customer's view of an order's parcels (``GET /api/orders/{id}`` and its
shipments): apart from ``models.fulfillment_api`` so that ``models.order_api`` can use it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field as PydanticField

from models.base import CamelModel
from models.fulfillment import ShipmentStatus


class ShipmentLinePublic(CamelModel):
    order_line_id: str
    product_id: str
    quantity: int


class TrackingEventPublic(CamelModel):
    status: str = PydanticField(description="The carrier's status, e.g. `in_transit`")
    message: str
    location: str | None
    occurred_at: datetime


class OrderShipment(CamelModel):
    """A parcel of the customer's order (no label URL: that is the warehouse's)."""

    id: str
    status: ShipmentStatus
    delayed: bool
    carrier: str | None
    tracking_code: str | None
    tracking_url: str | None
    lines: list[ShipmentLinePublic]
    shipped_at: datetime | None
    delivered_at: datetime | None
    latest_tracking: TrackingEventPublic | None


class OrderShipmentDetail(OrderShipment):
    tracking: list[TrackingEventPublic] = PydanticField(description="Oldest first")
