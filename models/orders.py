"""Orders (the read model the API serves), their lines and timeline, the address they
ship to, and the snapshot validate-order fixes. Payments are ``models.payments``; the
wire schemas ``models.order_api``.

``OrderWorkflow`` owns every change after placement; each transition updates the
``orders`` row and appends an ``order_events`` row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import (
    CamelModel,
    created_at_field,
    one_of,
    updated_at_field,
)
from models.quotes import Destination


class OrderStatus(StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    REQUIRES_ACTION = "requires_action"
    PAYMENT_AUTHORIZED = "payment_authorized"
    CONFIRMED = "confirmed"
    FULFILLMENT_QUEUED = "fulfillment_queued"
    # Set by fulfilment: some parcels on their way, all on their way, all delivered.
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Where OrderWorkflow ends (fulfilment carries an order on from fulfillment_queued).
FINAL_STATUSES = frozenset(
    {OrderStatus.FULFILLMENT_QUEUED, OrderStatus.FAILED, OrderStatus.CANCELLED}
)
# The statuses fulfilment sets after OrderWorkflow has ended.
AFTER_SALE_STATUSES = frozenset(
    {OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED}
)
# Failure codes that mean the payment failed (``payment.failed`` rather than
# ``order.failed``); the customer hears about them from that event's subscriber.
PAYMENT_FAILURES = frozenset(
    {
        "payment_declined",
        "payment_action_timeout",
        "invalid_payment_method",
        "payment_unavailable",
        "payment_error",
    }
)
# Until fulfilment has started, an order can still be cancelled.
CANCELLABLE_STATUSES = frozenset(OrderStatus) - FINAL_STATUSES - AFTER_SALE_STATUSES


class TimelineAudience(StrEnum):
    """Who an order's timeline entry is for, decided where it is written: the customer
    sees ``customer`` entries (status changes, parcels, refunds, returns); staff see
    every entry, ``staff`` ones too (compensations, stock to count in by hand, provider
    trouble, fulfilment holds, staff decisions)."""

    CUSTOMER = "customer"
    STAFF = "staff"


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # One live order per cart: checking a cart out twice finds the first order.
        Index(
            "orders_one_live_per_cart_idx",
            "cart_id",
            unique=True,
            postgresql_where=text("status NOT IN ('failed', 'cancelled')"),
        ),
        Index("orders_user_created_idx", "user_id", "created_at"),
        Index("orders_status_created_idx", "status", "created_at"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        CheckConstraint(
            "status IN ('pending', 'reserved', 'requires_action', 'payment_authorized', "
            "'confirmed', 'fulfillment_queued', 'partially_shipped', 'shipped', 'delivered', "
            "'failed', 'cancelled')",
            name="status_known",
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.ORDER), primary_key=True)
    user_id: str = Field(
        sa_column=Column(String, ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    )
    cart_id: str = Field(max_length=40)
    email: str = Field(max_length=320)
    status: OrderStatus = Field(sa_column=Column(String(24), nullable=False))
    failure_code: str | None = Field(default=None, max_length=64)
    failure_detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    currency: str = Field(default="USD", max_length=3)
    subtotal: int = Field(default=0)
    automatic_discounts: int = Field(default=0)
    coupon_code: str | None = Field(default=None, max_length=64)
    coupon_discount: int = Field(default=0)
    shipping: int = Field(default=0)
    tax: int = Field(default=0)
    total: int = Field(default=0)
    shipping_address: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    payment_method_type: str = Field(max_length=32)
    payment_token: str = Field(max_length=255)
    # Where the customer completes 3-D Secure while the order is requires_action.
    next_action_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Set by the first compensation that runs: from then on a late attempt of a forward
    # step (one that timed out but was still running) holds no stock and no money.
    undoing_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # Set by validate-order once the cart is priced and snapshotted.
    priced_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # The total the customer was shown (``expectedTotal``), if the client sent it:
    # validate-order charges nothing else (``price_changed``).
    expected_total: int | None = Field(default=None)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    @property
    def address(self) -> ShippingAddress:
        """``shipping_address`` (stored as JSON) as its model."""
        return ShippingAddress.model_validate(self.shipping_address)


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.ORDER_LINE), primary_key=True)
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    product_id: str = Field(max_length=40, index=True)
    name: str = Field(max_length=300)
    sku: str | None = Field(default=None, max_length=100)
    quantity: int
    list_price: int
    unit_price: int
    line_total: int


class OrderEvent(SQLModel, table=True):
    """The order's timeline: one row per transition or notable step."""

    __tablename__ = "order_events"
    __table_args__ = (
        # A keyed entry is written once per order: an activity retried after its write's
        # answer was lost (the entry committed) finds it and adds no second one.
        Index(
            "order_events_order_id_key_idx",
            "order_id",
            "key",
            unique=True,
            postgresql_where=text("key IS NOT NULL"),
        ),
        CheckConstraint(one_of("audience", TimelineAudience), name="audience_known"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.ORDER_EVENT), primary_key=True)
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    status: OrderStatus = Field(sa_column=Column(String(24), nullable=False))
    message: str = Field(max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    # What the entry is about (``label-kept:{shipment id}``), for an entry a retried step
    # may write again; None for the entries whose step writes them once by itself (a
    # status change, guarded by the status).
    key: str | None = Field(default=None, max_length=200)
    audience: TimelineAudience = Field(
        default=TimelineAudience.CUSTOMER,
        sa_column=Column(String(8), nullable=False, server_default=TimelineAudience.CUSTOMER.value),
    )
    created_at: datetime = created_at_field()


class ShippingAddress(CamelModel):
    """Where an order ships: the address as checkout cleaned it (stored on the order)."""

    name: str | None = PydanticField(default=None, examples=["Ada Lovelace"])
    street: str = PydanticField(examples=["123 Main St"])
    city: str = PydanticField(examples=["Boston"])
    state: str | None = PydanticField(default=None, examples=["MA"])
    zip: str = PydanticField(examples=["02101"])
    country: str = PydanticField(description="ISO 3166-1 alpha-2", examples=["US"])
    phone: str | None = None

    @property
    def destination(self) -> Destination:
        return Destination(country=self.country, state=self.state)


class LineSnapshot(BaseModel):
    """A line as validate-order priced it (the workflow's copy; snake_case JSON)."""

    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


class OrderSnapshot(BaseModel):
    """What validate-order fixed: whom it is for (the account, by id), the priced lines
    and the total."""

    order_id: str
    user_id: str
    # Empty: kept in the workflow's history, out of an erasure's reach, the snapshot names
    # no person (``services.order_snapshots``). Snapshots recorded before carry them,
    # unused: the order's emails read the address and name when sent.
    email: str
    name: str
    currency: str
    total: int
    lines: list[LineSnapshot]
    # The receipt's other rows (None in snapshots recorded before they were kept).
    subtotal: int | None = None
    automatic_discounts: int | None = None
    coupon_code: str | None = None
    coupon_discount: int | None = None
    shipping: int | None = None
    tax: int | None = None
