"""Orders (the read model the API serves), their lines, timeline, and payments.

``OrderWorkflow`` owns every change after placement; each transition updates the
``orders`` row and appends an ``order_events`` row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, StrictInt, field_validator, model_validator
from pydantic import Field as PydanticField
from pydantic_core import PydanticCustomError
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
    MultilineText,
    RequestModel,
    SingleLineText,
    created_at_field,
    one_of,
    updated_at_field,
)
from models.quotes import Destination
from models.shipment_views import OrderShipment


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


class PaymentStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    FAILED = "failed"


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


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(
            "0 <= amount_refunded AND amount_refunded <= amount_captured "
            "AND amount_captured <= amount",
            name="amounts_consistent",
        ),
        CheckConstraint(
            "status IN ('pending', 'requires_action', 'authorized', 'captured', 'voided', "
            "'refunded', 'partially_refunded', 'failed')",
            name="status_known",
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.PAYMENT), primary_key=True)
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    provider: str = Field(max_length=32)
    intent_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    amount: int
    currency: str = Field(max_length=3)
    status: PaymentStatus = Field(sa_column=Column(String(24), nullable=False))
    amount_captured: int = Field(default=0)
    amount_refunded: int = Field(default=0)
    failure_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class PaymentEvent(SQLModel, table=True):
    """A payment's history: our calls and the provider's webhooks (deduplicated by id)."""

    __tablename__ = "payment_events"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.PAYMENT_EVENT), primary_key=True)
    payment_id: str | None = Field(
        default=None,
        sa_column=Column(
            String, ForeignKey("payments.id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    # The provider's event id for webhooks; a delivery seen twice is dropped.
    provider_event_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    type: str = Field(max_length=100)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = created_at_field()


# --- wire schemas ---------------------------------------------------------------------


class ShippingAddressIn(RequestModel):
    """The seed's address (street/city/state/zip); country defaults to US."""

    name: SingleLineText | None = PydanticField(
        default=None, max_length=200, examples=["Ada Lovelace"]
    )
    street: SingleLineText = PydanticField(min_length=1, max_length=300, examples=["123 Main St"])
    city: SingleLineText = PydanticField(min_length=1, max_length=120, examples=["Boston"])
    state: SingleLineText | None = PydanticField(default=None, max_length=120, examples=["MA"])
    zip: SingleLineText = PydanticField(min_length=1, max_length=20, examples=["02101"])
    country: SingleLineText = PydanticField(
        default="US", min_length=2, max_length=2, examples=["US"]
    )
    phone: SingleLineText | None = PydanticField(default=None, max_length=32)


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


# The seed's clients send "credit_card"; Stripe calls the same thing "card".
PAYMENT_METHOD_TYPES: dict[str, str] = {"card": "card", "credit_card": "card"}


class PaymentMethodIn(RequestModel):
    type: str = PydanticField(
        max_length=40,
        examples=["card", "credit_card"],
        json_schema_extra={"enum": list(PAYMENT_METHOD_TYPES)},
        description="`card`, or the seed's `credit_card` (the same thing; stored as `card`)",
    )
    token: str = PydanticField(
        min_length=3,
        max_length=255,
        pattern=r"^[A-Za-z0-9_]+$",
        examples=["pm_card_visa"],
        description="A Stripe PaymentMethod id (test tokens: pm_card_visa, "
        "pm_card_chargeDeclined, pm_card_authenticationRequired)",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            return PAYMENT_METHOD_TYPES[value]
        except KeyError:
            accepted = ", ".join(PAYMENT_METHOD_TYPES)
            raise PydanticCustomError(
                "invalid_payment_method",
                "unknown payment method type '{given}'; accepted: {accepted}",
                {"given": value[:40], "accepted": accepted},
            ) from None


class OrderCreate(RequestModel):
    cart_id: str = PydanticField(min_length=1, max_length=40, examples=["cart_01J…"])
    user_id: str | None = PydanticField(
        default=None,
        max_length=40,
        description="Accepted only when it is the caller's own id (the seed's pipeline "
        "takes `{cartId, userId, shippingAddress, paymentMethod}`); another's answers 403 "
        "`user_mismatch`",
    )
    shipping_address: ShippingAddressIn | None = None
    shipping_address_id: str | None = PydanticField(default=None, max_length=40)
    payment_method: PaymentMethodIn
    expected_total: StrictInt | None = PydanticField(
        default=None,
        ge=0,
        le=2_147_483_647,
        examples=[24381],
        description="The total the shopper was shown (the cart's `totals.total` for this "
        "shipping address, minor units). If given, the order is charged that or nothing: "
        "priced otherwise (a price, discount or coupon changed meanwhile) it fails with "
        "`price_changed` before anything is held or charged",
    )

    @model_validator(mode="after")
    def _one_address(self) -> OrderCreate:
        if (self.shipping_address is None) == (self.shipping_address_id is None):
            raise ValueError("give either shippingAddress or shippingAddressId")
        return self


class OrderCancel(RequestModel):
    reason: MultilineText | None = PydanticField(
        default=None, max_length=500, examples=["changed my mind"]
    )


class RefundCreate(RequestModel):
    amount: StrictInt | None = PydanticField(
        default=None,
        gt=0,
        le=2_147_483_647,
        examples=[1200],
        description="Minor units; omit to refund everything still captured",
    )
    reason: MultilineText | None = PydanticField(
        default=None, max_length=500, examples=["damaged item"]
    )


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


class OrderLinePublic(CamelModel):
    product_id: str
    name: str
    sku: str | None
    quantity: int
    list_price: int
    unit_price: int
    line_total: int


class OrderTotals(CamelModel):
    subtotal: int
    automatic_discounts: int
    coupon_discount: int
    shipping: int
    tax: int
    total: int


class PaymentSummary(CamelModel):
    id: str
    provider: str
    status: PaymentStatus
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    failure_code: str | None


class OrderEventPublic(CamelModel):
    status: OrderStatus
    message: str
    data: dict[str, Any]
    audience: TimelineAudience = PydanticField(
        description="`customer`: shown to the customer and staff; `staff`: an operational "
        "note only staff see (the customer's own reads leave it out)"
    )
    created_at: datetime


class OrderSummary(CamelModel):
    id: str
    user_id: str
    status: OrderStatus
    failure_code: str | None
    currency: str
    total: int | None = PydanticField(
        description="null until validate-order has priced the order (while `pending`)"
    )
    item_count: int
    created_at: datetime
    updated_at: datetime


class OrderPublic(CamelModel):
    id: str
    user_id: str
    cart_id: str
    status: OrderStatus
    failure_code: str | None
    failure_detail: str | None
    next_action_url: str | None
    currency: str
    coupon_code: str | None
    items: list[OrderLinePublic]
    totals: OrderTotals | None = PydanticField(
        description="null until validate-order has priced the order (while `pending`): "
        "the workflow prices the cart a moment after the 202, and only its figures are "
        "charged; the cart's own totals are the estimate to show meanwhile"
    )
    shipping_address: ShippingAddress
    payment_method: dict[str, str]
    payment: PaymentSummary | None
    timeline: list[OrderEventPublic]
    shipments: list[OrderShipment] = PydanticField(
        default_factory=list,
        description="The order's parcels with their latest tracking (empty until the "
        "warehouse packs the first); `GET /api/orders/{id}/shipments/{shipmentId}` has "
        "a parcel's full tracking history",
    )
    created_at: datetime
    updated_at: datetime
