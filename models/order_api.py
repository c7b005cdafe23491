"""Wire schemas of orders: what a client sends to place, cancel or refund an order, and
the order as the API answers it. camelCase on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field as PydanticField
from pydantic import StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from models.base import (
    CamelModel,
    MultilineText,
    RequestModel,
    SingleLineText,
)
from models.orders import OrderLine, OrderStatus, ShippingAddress, TimelineAudience
from models.payments import PaymentStatus
from models.shipment_views import OrderShipment


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


class OrderLinePublic(CamelModel):
    order_line_id: str = PydanticField(
        examples=["oline_01JEX5D8EAB2C3D4E5F6G7H8J9"],
        description="The line's id: what a return (`POST /api/orders/{id}/returns`) and a "
        "parcel's `lines` name it by",
    )
    product_id: str
    name: str
    sku: str | None
    quantity: int
    list_price: int
    unit_price: int
    line_total: int

    @classmethod
    def of(cls, line: OrderLine) -> OrderLinePublic:
        return cls(
            order_line_id=line.id,
            product_id=line.product_id,
            name=line.name,
            sku=line.sku,
            quantity=line.quantity,
            list_price=line.list_price,
            unit_price=line.unit_price,
            line_total=line.line_total,
        )


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
