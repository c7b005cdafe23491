"""Wire schemas of fulfilment: the warehouse's fulfilment orders (staff) and the
customer's view of an order's parcels. Rendered from the ``models.fulfillment`` rows by
``services.fulfillment.reading``; camelCase on the wire."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field as PydanticField

from models.base import CamelModel, MultilineText, RequestModel
from models.fulfillment import FulfillmentStatus, ShipmentStatus
from models.orders import ShippingAddress
from models.shipment_views import (
    OrderShipment,
    OrderShipmentDetail,
    ShipmentLinePublic,
    TrackingEventPublic,
)

# --- requests ---------------------------------------------------------------------------


class ShipmentLineIn(RequestModel):
    order_line_id: str = PydanticField(min_length=1, max_length=40, examples=["oline_01JD…"])
    quantity: int = PydanticField(gt=0, le=10_000, examples=[1])


class ShipmentCreate(RequestModel):
    """A parcel staff pack: which order lines, how many of each, and its weight."""

    lines: list[ShipmentLineIn] = PydanticField(min_length=1, max_length=200)
    weight_oz: float | None = PydanticField(default=None, gt=0, le=2400, examples=[24.0])


class FulfillmentHold(RequestModel):
    reason: MultilineText = PydanticField(
        min_length=1, max_length=500, examples=["address to confirm"]
    )


class FulfillmentCancel(RequestModel):
    reason: MultilineText | None = PydanticField(
        default=None, max_length=500, examples=["out of stock"]
    )


# --- staff views ------------------------------------------------------------------------


class FulfillmentLinePublic(CamelModel):
    order_line_id: str
    product_id: str
    sku: str | None
    name: str
    quantity: int
    shipped: int = PydanticField(description="Units in parcels that have a label")
    delivered: int
    unassigned: int = PydanticField(description="Units not yet in any live parcel")


class ShipmentSummary(CamelModel):
    """A parcel as staff see it (with its label)."""

    id: str
    status: ShipmentStatus
    delayed: bool
    weight_oz: float
    carrier: str | None
    service: str | None
    tracking_code: str | None
    tracking_url: str | None
    label_url: str | None
    lines: list[ShipmentLinePublic]
    shipped_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class FulfillmentPublic(CamelModel):
    id: str
    order_id: str
    status: FulfillmentStatus
    priority: int = PydanticField(description="Higher ships sooner")
    priority_level: str
    hold_reason: str | None
    held_at: datetime | None
    shipping_address: ShippingAddress
    lines: list[FulfillmentLinePublic]
    shipments: list[ShipmentSummary]
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime


__all__ = [
    "FulfillmentCancel",
    "FulfillmentHold",
    "FulfillmentLinePublic",
    "FulfillmentPublic",
    "OrderShipment",
    "OrderShipmentDetail",
    "ShipmentCreate",
    "ShipmentLineIn",
    "ShipmentLinePublic",
    "ShipmentSummary",
    "TrackingEventPublic",
]
