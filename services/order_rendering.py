"""An order as the API renders it (``OrderPublic``), from its row and its parts."""

from __future__ import annotations

from models.order_api import (
    OrderEventPublic,
    OrderLinePublic,
    OrderPublic,
    OrderTotals,
    PaymentSummary,
)
from models.orders import Order
from models.payments import Payment
from models.shipment_views import OrderShipment


def render_order(
    order: Order,
    *,
    lines: list[OrderLinePublic],
    timeline: list[OrderEventPublic],
    payment: Payment | None,
    shipments: list[OrderShipment],
) -> OrderPublic:
    return OrderPublic(
        id=order.id,
        user_id=order.user_id,
        cart_id=order.cart_id,
        status=order.status,
        failure_code=order.failure_code,
        failure_detail=order.failure_detail,
        next_action_url=order.next_action_url,
        currency=order.currency,
        coupon_code=order.coupon_code,
        items=lines,
        totals=OrderTotals(
            subtotal=order.subtotal,
            automatic_discounts=order.automatic_discounts,
            coupon_discount=order.coupon_discount,
            shipping=order.shipping,
            tax=order.tax,
            total=order.total,
        )
        if order.priced_at is not None
        else None,
        shipping_address=order.address,
        payment_method={"type": order.payment_method_type, "token": order.payment_token},
        payment=PaymentSummary.model_validate(payment, from_attributes=True)
        if payment is not None
        else None,
        timeline=timeline,
        shipments=shipments,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )
