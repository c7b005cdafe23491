"""Examples of orders, a parcel's tracking, refunds and the providers' webhooks.

The order is the cart of ``carts.py`` checked out: placed (202, the workflow prices it a
moment later), then confirmed, captured and shipped in one parcel."""

from __future__ import annotations

from api.examples.carts import TOTALS
from api.examples.common import (
    ADDRESS,
    CART_ID,
    CREATED_AT,
    CURRENCY,
    FULFILLMENT_ID,
    ORDER_ID,
    ORDER_LINE_ID,
    PAYMENT_ID,
    PRODUCT_ID,
    SHIPMENT_ID,
    USER_ID,
    page,
)

LINE = {
    "orderLineId": ORDER_LINE_ID,
    "productId": PRODUCT_ID,
    "name": "Wireless Headphones",
    "sku": "HP-WL-100",
    "quantity": 2,
    "listPrice": 9999,
    "unitPrice": 8999,
    "lineTotal": 17998,
}
PAYMENT = {
    "id": PAYMENT_ID,
    "provider": "stripe",
    "status": "captured",
    "amount": 18060,
    "amountCaptured": 18060,
    "amountRefunded": 0,
    "currency": CURRENCY,
    "failureCode": None,
}


def _event(
    status: str,
    message: str,
    at: str,
    *,
    audience: str = "customer",
    data: dict[str, object] | None = None,
) -> dict[str, object]:
    return {
        "status": status,
        "message": message,
        "data": data or {},
        "audience": audience,
        "createdAt": at,
    }


PLACED = _event("pending", "order placed", CREATED_AT)
TIMELINE = [
    PLACED,
    _event("reserved", "stock reserved", "2026-12-06T14:30:01Z"),
    _event("confirmed", "order confirmed", "2026-12-06T14:30:02Z"),
    _event("fulfillment_queued", "queued for fulfilment", "2026-12-06T14:30:03Z"),
    _event("shipped", "every item has shipped", "2026-12-07T10:05:00Z"),
]
TRACKING = {
    "status": "in_transit",
    "message": "Departed USPS regional facility",
    "location": "Boston, MA",
    "occurredAt": "2026-12-07T18:22:00Z",
}
SHIPMENT = {
    "id": SHIPMENT_ID,
    "status": "in_transit",
    "delayed": False,
    "carrier": "USPS",
    "trackingCode": "9400111899223344556677",
    "trackingUrl": "https://track.easypost.com/djE6dHJrXzAxSkVYN1Mx",
    "lines": [{"orderLineId": ORDER_LINE_ID, "productId": PRODUCT_ID, "quantity": 2}],
    "shippedAt": "2026-12-07T10:05:00Z",
    "deliveredAt": None,
    "latestTracking": TRACKING,
}
ORDER = {
    "id": ORDER_ID,
    "userId": USER_ID,
    "cartId": CART_ID,
    "status": "shipped",
    "failureCode": None,
    "failureDetail": None,
    "nextActionUrl": None,
    "currency": CURRENCY,
    "couponCode": "WELCOME10",
    "items": [LINE],
    "totals": TOTALS,
    "shippingAddress": ADDRESS,
    "paymentMethod": {"type": "card", "token": "pm_card_visa"},
    "payment": PAYMENT,
    "timeline": TIMELINE,
    "shipments": [SHIPMENT],
    "createdAt": CREATED_AT,
    "updatedAt": "2026-12-07T10:05:00Z",
}
# The 202: the workflow has started; it prices, reserves and charges a moment later.
PLACED_ORDER = ORDER | {
    "status": "pending",
    "totals": None,
    "payment": None,
    "timeline": [PLACED],
    "shipments": [],
    "updatedAt": CREATED_AT,
}
CANCELLED_AT = "2026-12-06T14:40:00Z"
CONFIRMED_ORDER = ORDER | {"status": "confirmed", "timeline": TIMELINE[:3], "shipments": []}
CANCELLED_ORDER = CONFIRMED_ORDER | {
    "status": "cancelled",
    "payment": PAYMENT | {"status": "refunded", "amountRefunded": 18060},
    "timeline": [*TIMELINE[:3], _event("cancelled", "order cancelled", CANCELLED_AT)],
    "updatedAt": CANCELLED_AT,
}
# Staff read every entry of the timeline, the staff-only ones too (`audience: staff`).
REFUNDED_ORDER = ORDER | {
    "payment": PAYMENT | {"status": "partially_refunded", "amountRefunded": 1200},
    "timeline": [
        *TIMELINE[:4],
        _event(
            "fulfillment_queued",
            "fulfilment order opened",
            "2026-12-06T14:30:03Z",
            audience="staff",
            data={"fulfillmentId": FULFILLMENT_ID, "priority": 10, "priorityLevel": "normal"},
        ),
        TIMELINE[4],
        _event(
            "shipped",
            "refunded 12.00 USD",
            "2026-12-08T09:00:00Z",
            data={"refundId": "re_3QHj2kLmN4oP5qR6", "reason": "damaged item"},
        ),
    ],
}
SUMMARY = {
    "id": ORDER_ID,
    "userId": USER_ID,
    "status": "shipped",
    "failureCode": None,
    "currency": CURRENCY,
    "total": 18060,
    "itemCount": 2,
    "createdAt": CREATED_AT,
    "updatedAt": "2026-12-07T10:05:00Z",
}

RESPONSES: dict[str, dict[int, object]] = {
    "POST /api/orders": {202: PLACED_ORDER},
    "GET /api/orders": {200: page(SUMMARY, total=2)},
    "GET /api/orders/{order_id}": {200: ORDER},
    "POST /api/orders/{order_id}/cancel": {
        200: CANCELLED_ORDER,
        202: CONFIRMED_ORDER,
    },
    "GET /api/orders/{order_id}/shipments/{shipment_id}": {
        200: SHIPMENT
        | {
            "tracking": [
                {
                    "status": "pre_transit",
                    "message": "Shipping label created",
                    "location": None,
                    "occurredAt": "2026-12-07T10:05:00Z",
                },
                TRACKING,
            ]
        }
    },
    "POST /api/admin/orders/{order_id}/refunds": {200: REFUNDED_ORDER},
    "GET /api/admin/orders": {200: page(SUMMARY, total=500)},
    "POST /api/payments/webhooks/stripe": {200: {"received": True, "duplicate": False}},
    "POST /api/shipping/webhooks/easypost": {
        200: {"received": True, "shipmentId": SHIPMENT_ID, "ignored": None}
    },
}
REQUESTS: dict[str, object] = {
    "POST /api/orders/{order_id}/cancel": {"reason": "changed my mind"},
    "POST /api/admin/orders/{order_id}/refunds": {"amount": 1200, "reason": "damaged item"},
}
