"""Examples of the warehouse's side (staff): fulfilments, their parcels, holds and
cancellations. The fulfilment is the order of ``orders.py``: two headphones, one parcel."""

from __future__ import annotations

from api.examples.common import (
    ADDRESS,
    FULFILLMENT_ID,
    ORDER_ID,
    ORDER_LINE_ID,
    PRODUCT_ID,
    SHIPMENT_ID,
    page,
)

QUEUED_AT = "2026-12-06T14:30:03Z"
LINE = {
    "orderLineId": ORDER_LINE_ID,
    "productId": PRODUCT_ID,
    "sku": "HP-WL-100",
    "name": "Wireless Headphones",
    "quantity": 2,
    "shipped": 0,
    "delivered": 0,
    "unassigned": 0,
}
PARCEL = {
    "id": SHIPMENT_ID,
    "status": "pending",
    "delayed": False,
    "weightOz": 24.0,
    "carrier": None,
    "service": None,
    "trackingCode": None,
    "trackingUrl": None,
    "labelUrl": None,
    "lines": [{"orderLineId": ORDER_LINE_ID, "productId": PRODUCT_ID, "quantity": 2}],
    "shippedAt": None,
    "deliveredAt": None,
    "createdAt": "2026-12-07T09:58:00Z",
}
LABELLED = PARCEL | {
    "status": "label_purchased",
    "carrier": "USPS",
    "service": "Priority",
    "trackingCode": "9400111899223344556677",
    "trackingUrl": "https://track.easypost.com/djE6dHJrXzAxSkVYN1Mx",
    "labelUrl": "https://easypost-files.s3.amazonaws.com/files/postage_label/20261207/label.png",
}
FULFILLMENT = {
    "id": FULFILLMENT_ID,
    "orderId": ORDER_ID,
    "status": "in_progress",
    "priority": 40,
    "priorityLevel": "normal",
    "holdReason": None,
    "heldAt": None,
    "shippingAddress": ADDRESS,
    "lines": [LINE],
    "shipments": [PARCEL],
    "cancelledAt": None,
    "createdAt": QUEUED_AT,
    "updatedAt": "2026-12-07T09:58:00Z",
}
OPEN = FULFILLMENT | {
    "status": "open",
    "lines": [LINE | {"unassigned": 2}],
    "shipments": [],
    "updatedAt": QUEUED_AT,
}
HELD = OPEN | {
    "status": "on_hold",
    "holdReason": "address to confirm",
    "heldAt": "2026-12-06T15:00:00Z",
    "updatedAt": "2026-12-06T15:00:00Z",
}
CANCELLED = OPEN | {
    "status": "cancelled",
    "cancelledAt": "2026-12-06T15:10:00Z",
    "updatedAt": "2026-12-06T15:10:00Z",
}

RESPONSES: dict[str, dict[int, object]] = {
    "GET /api/admin/fulfillments": {200: page(OPEN, total=14)},
    "GET /api/admin/fulfillments/{fulfillment_id}": {200: FULFILLMENT},
    "POST /api/admin/fulfillments/{fulfillment_id}/shipments": {201: PARCEL},
    "POST /api/admin/fulfillments/{fulfillment_id}/hold": {200: HELD},
    "POST /api/admin/fulfillments/{fulfillment_id}/release": {200: OPEN},
    "POST /api/admin/fulfillments/{fulfillment_id}/cancel": {200: CANCELLED, 202: OPEN},
    "POST /api/admin/shipments/{shipment_id}/address": {202: LABELLED},
}
REQUESTS: dict[str, object] = {
    "POST /api/admin/fulfillments/{fulfillment_id}/hold": {"reason": "address to confirm"},
    "POST /api/admin/fulfillments/{fulfillment_id}/cancel": {"reason": "out of stock"},
}
