"""Examples of returns: the customer asks, staff approve (a return label), receive and
settle; the refund goes back to the card. One of the two headphones arrived damaged."""

from __future__ import annotations

from api.examples.common import (
    CREATED_AT,
    CURRENCY,
    ORDER_ID,
    ORDER_LINE_ID,
    PRODUCT_ID,
    RETURN_ID,
    USER_ID,
    page,
)
from models.returns import REASON_TEXT, SHOP_FAULT_REASONS, ReturnReason

APPROVED_AT = "2026-12-10T09:00:00Z"
RECEIVED_AT = "2026-12-13T11:20:00Z"
LINE = {
    "id": "rline_01JEY2R3S4T5V6W7X8Y9Z0A1B3",
    "orderLineId": ORDER_LINE_ID,
    "productId": PRODUCT_ID,
    "name": "Wireless Headphones",
    "quantity": 1,
    "receivedQuantity": 0,
    "damagedQuantity": 0,
}
REQUESTED = {
    "id": RETURN_ID,
    "orderId": ORDER_ID,
    "userId": USER_ID,
    "status": "requested",
    "reason": "damaged",
    "note": "The left ear cup arrived cracked.",
    "declineReason": None,
    "autoApproved": False,
    "labelUrl": None,
    "trackingCode": None,
    "trackingUrl": None,
    "currency": CURRENCY,
    "refundAmount": None,
    "refundId": None,
    "refundError": None,
    "settlementNote": None,
    "shipBy": None,
    "approvedAt": None,
    "decidedAt": None,
    "receivedAt": None,
    "refundedAt": None,
    "closedAt": None,
    "createdAt": CREATED_AT,
    "updatedAt": CREATED_AT,
    "lines": [LINE],
}
APPROVED = REQUESTED | {
    "status": "approved",
    "labelUrl": "https://easypost-files.s3.amazonaws.com/files/postage_label/20261210/return.png",
    "trackingCode": "9400111899223344550011",
    "trackingUrl": "https://track.easypost.com/djE6dHJrXzAxSkVZMlI0",
    "shipBy": "2026-12-24T09:00:00Z",
    "approvedAt": APPROVED_AT,
    "decidedAt": APPROVED_AT,
    "updatedAt": APPROVED_AT,
}
DECLINED = REQUESTED | {
    "status": "declined",
    "declineReason": "worn, not returnable",
    "decidedAt": APPROVED_AT,
    "closedAt": APPROVED_AT,
    "updatedAt": APPROVED_AT,
}
RECEIVED = APPROVED | {
    "status": "received",
    "receivedAt": RECEIVED_AT,
    "updatedAt": RECEIVED_AT,
    "lines": [LINE | {"receivedQuantity": 1, "damagedQuantity": 1}],
}
# A damaged item is the shop's fault: the line as charged (89.99 less half the coupon,
# with its tax) comes back.
REFUNDED = RECEIVED | {
    "status": "refunded",
    "refundAmount": 9030,
    "refundId": "re_3QJx8L2eZvKYlo2C0d4F6h8J",
    "refundedAt": "2026-12-13T11:20:05Z",
    "updatedAt": "2026-12-13T11:20:05Z",
}
SETTLED = RECEIVED | {
    "status": "closed",
    "refundAmount": 787,
    "settlementNote": "30.00 went back by a staff refund",
    "closedAt": "2026-12-14T08:00:00Z",
    "updatedAt": "2026-12-14T08:00:00Z",
}
REASONS = [
    {
        "reason": str(reason),
        "description": REASON_TEXT[reason],
        "shopFault": reason in SHOP_FAULT_REASONS,
        "autoApproved": False,
    }
    for reason in ReturnReason
]

RESPONSES: dict[str, dict[int, object]] = {
    "GET /api/returns/reasons": {200: REASONS},
    "POST /api/orders/{order_id}/returns": {201: REQUESTED},
    "GET /api/orders/{order_id}/returns": {200: [APPROVED]},
    "GET /api/returns/{return_id}": {200: APPROVED},
    "GET /api/admin/returns": {200: page(REQUESTED, total=6)},
    "GET /api/admin/returns/{return_id}": {200: RECEIVED},
    "POST /api/admin/returns/{return_id}/approve": {200: APPROVED, 202: REQUESTED},
    "POST /api/admin/returns/{return_id}/decline": {200: DECLINED, 202: REQUESTED},
    "POST /api/admin/returns/{return_id}/receive": {200: REFUNDED, 202: RECEIVED},
    "POST /api/admin/returns/{return_id}/settle": {200: SETTLED},
}
REQUESTS: dict[str, object] = {}
