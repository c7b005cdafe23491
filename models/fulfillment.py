"""Fulfilment orders, their shipments (parcels), labels and carrier tracking history.

``FulfillmentWorkflow`` (one per order) and ``ShipmentWorkflow`` (one per parcel) own
every change; each change updates its row and, where the customer can see it, the order's
status and timeline in the same transaction. ``tracking_events`` is append-only: a
database trigger refuses updates, so the carrier's history is never rewritten.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import created_at_field, one_of, updated_at_field


class FulfillmentStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class ShipmentStatus(StrEnum):
    """A parcel's status. The carrier's statuses follow ``label_purchased`` (which is
    the carrier's ``pre_transit``); ``failure`` and ``return_to_sender`` are exceptions
    that put the fulfilment on hold. ``delayed`` is a flag on the row, not a status."""

    PENDING = "pending"  # created by staff, no label yet
    LABEL_PURCHASED = "label_purchased"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    FAILURE = "failure"
    RETURN_TO_SENDER = "return_to_sender"
    CANCELLED = "cancelled"


class Fulfillment(SQLModel, table=True):
    """The warehouse's work for one order (a "fulfilment order")."""

    __tablename__ = "fulfillments"
    __table_args__ = (
        # The warehouse's queue: open work, most urgent first, then oldest first.
        Index("fulfillments_queue_idx", "status", "priority", "created_at"),
        CheckConstraint(one_of("status", FulfillmentStatus), name="status_known"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.FULFILLMENT), primary_key=True)
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    status: FulfillmentStatus = Field(sa_column=Column(String(24), nullable=False))
    # ``fulfillment.order_ready``'s priority score (higher = sooner) and level.
    priority: int = Field(default=0)
    priority_level: str = Field(default="normal", max_length=16)
    hold_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    held_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # Where it ships (the order's address, copied when the fulfilment opened).
    shipping_address: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class FulfillmentLine(SQLModel, table=True):
    __tablename__ = "fulfillment_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.FULFILLMENT_LINE), primary_key=True)
    fulfillment_id: str = Field(
        sa_column=Column(
            String, ForeignKey("fulfillments.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    order_line_id: str = Field(
        sa_column=Column(
            String, ForeignKey("order_lines.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    product_id: str = Field(max_length=40)
    sku: str | None = Field(default=None, max_length=100)
    name: str = Field(max_length=300)
    quantity: int


class Shipment(SQLModel, table=True):
    """One parcel of a fulfilment, tracked by its own ``ShipmentWorkflow``."""

    __tablename__ = "shipments"
    __table_args__ = (CheckConstraint(one_of("status", ShipmentStatus), name="status_known"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.SHIPMENT), primary_key=True)
    fulfillment_id: str = Field(
        sa_column=Column(
            String, ForeignKey("fulfillments.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    status: ShipmentStatus = Field(sa_column=Column(String(24), nullable=False))
    # Set when no carrier update came for SHIPMENT_STALL_HOURS; cleared by the next one.
    delayed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default="false")
    )
    delayed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    weight_oz: float = Field(default=16.0)
    # The current label (``shipment_labels`` keeps every one bought).
    carrier: str | None = Field(default=None, max_length=64)
    service: str | None = Field(default=None, max_length=64)
    tracking_code: str | None = Field(default=None, max_length=128, index=True)
    tracking_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    label_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The provider's shipment id, saved right after it is created (before buying), so a
    # retried booking buys that same shipment's label instead of a second one.
    provider_shipment_id: str | None = Field(
        default=None, sa_column=Column(String(128), unique=True)
    )
    provider_tracker_id: str | None = Field(
        default=None, sa_column=Column(String(128), unique=True)
    )
    last_carrier_update_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    shipped_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ShipmentLine(SQLModel, table=True):
    __tablename__ = "shipment_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.SHIPMENT_LINE), primary_key=True)
    shipment_id: str = Field(
        sa_column=Column(
            String, ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    order_line_id: str = Field(
        sa_column=Column(
            String, ForeignKey("order_lines.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    product_id: str = Field(max_length=40)
    quantity: int


class ShipmentLabel(SQLModel, table=True):
    """Every label bought for a shipment (a relabel adds one; none is overwritten)."""

    __tablename__ = "shipment_labels"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.LABEL), primary_key=True)
    shipment_id: str = Field(
        sa_column=Column(
            String, ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    provider_shipment_id: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    carrier: str = Field(max_length=64)
    service: str = Field(max_length=64)
    tracking_code: str = Field(max_length=128)
    tracking_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    label_url: str = Field(sa_column=Column(Text, nullable=False))
    rate_amount: int = Field(default=0)
    currency: str = Field(default="USD", max_length=3)
    voided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = created_at_field()


class TrackingEvent(SQLModel, table=True):
    """The carrier's tracking history of a parcel: append-only (a trigger refuses
    UPDATE). A carrier event seen twice (same provider id) is stored once."""

    __tablename__ = "tracking_events"
    __table_args__ = (Index("tracking_events_shipment_time_idx", "shipment_id", "occurred_at"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.TRACKING_EVENT), primary_key=True)
    shipment_id: str = Field(
        sa_column=Column(String, ForeignKey("shipments.id", ondelete="CASCADE"), nullable=False)
    )
    # The carrier's identity of this update (unique): duplicates are dropped.
    provider_event_id: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    carrier_status: str = Field(max_length=32)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    location: str | None = Field(default=None, max_length=300)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = created_at_field()
