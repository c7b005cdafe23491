"""Examples of pricing rules (automatic discounts, coupons) and stock (inventory,
purchase orders). Percentages are decimals as strings; amounts are minor units."""

from __future__ import annotations

from api.examples.common import CATEGORY_ID, CREATED_AT, CURRENCY, PRODUCT_ID, page

DISCOUNT = {
    "id": "disc_01JEX1D2E3F4G5H6J7K8M9N0P1",
    "name": "Summer audio sale",
    "kind": "percentage",
    "percent": "10",
    "amount": None,
    "productId": None,
    "categoryId": CATEGORY_ID,
    "startsAt": "2026-12-01T00:00:00Z",
    "endsAt": "2026-12-31T23:59:59Z",
    "active": True,
}
COUPON = {
    "id": "cpn_01JEX1E2F3G4H5J6K7M8N9P0Q1",
    "code": "WELCOME10",
    "kind": "fixed",
    "percent": None,
    "amount": 1000,
    "currency": CURRENCY,
    "minSubtotal": 5000,
    "startsAt": None,
    "expiresAt": "2027-01-31T23:59:59Z",
    "usageLimit": 1000,
    "perUserLimit": 1,
    "usedCount": 87,
    "active": True,
}
STOCK = {
    "productId": PRODUCT_ID,
    "onHand": 47,
    "reserved": 5,
    "available": 42,
    "lowStockThreshold": 10,
}
LOW_STOCK = STOCK | {"onHand": 9, "reserved": 2, "available": 7}
MOVEMENT = {
    "id": "mov_01JEX6M7N8P9Q0R1S2T3V4W5X6",
    "kind": "adjustment",
    "onHandDelta": -3,
    "reservedDelta": 0,
    "reason": "cycle count",
    "reference": None,
    "createdAt": CREATED_AT,
}
PURCHASE_ORDER = {
    "id": "po_01JEX6P7Q8R9S0T1V2W3X4Y5Z6",
    "productId": PRODUCT_ID,
    "quantity": 50,
    "status": "open",
    "reason": "auto-reorder: 7 available, threshold 10",
    "createdAt": CREATED_AT,
    "receivedAt": None,
}

RESPONSES: dict[str, dict[int, object]] = {
    "POST /api/discounts": {201: DISCOUNT},
    "GET /api/discounts": {200: page(DISCOUNT)},
    "POST /api/coupons": {201: COUPON | {"usedCount": 0}},
    "GET /api/coupons": {200: page(COUPON)},
    "GET /api/coupons/{code}": {200: COUPON},
    "PATCH /api/coupons/{code}": {200: COUPON | {"active": False}},
    "POST /api/coupons/validate": {
        200: {"valid": True, "code": "WELCOME10", "discount": 1000, "reason": None, "detail": None}
    },
    "GET /api/inventory/low-stock": {200: page(LOW_STOCK, total=3)},
    "GET /api/inventory/{product_id}": {
        200: STOCK | {"movements": [MOVEMENT], "total": 12, "page": 1, "limit": 20}
    },
    "POST /api/inventory/{product_id}/adjust": {200: STOCK | {"onHand": 44, "available": 39}},
    "GET /api/purchase-orders": {200: page(PURCHASE_ORDER)},
    "POST /api/purchase-orders/{purchase_order_id}/receive": {
        200: PURCHASE_ORDER | {"status": "received", "receivedAt": "2026-12-08T09:12:00Z"}
    },
}
REQUESTS: dict[str, object] = {
    "POST /api/discounts": {
        "name": "Summer audio sale",
        "kind": "percentage",
        "percent": "10",
        "categoryId": CATEGORY_ID,
        "startsAt": "2026-12-01T00:00:00Z",
        "endsAt": "2026-12-31T23:59:59Z",
    },
    "POST /api/coupons": {
        "code": "WELCOME10",
        "kind": "fixed",
        "amount": 1000,
        "currency": CURRENCY,
        "minSubtotal": 5000,
        "expiresAt": "2027-01-31T23:59:59Z",
        "usageLimit": 1000,
        "perUserLimit": 1,
    },
    "PATCH /api/coupons/{code}": {"active": False},
    "POST /api/coupons/validate": {"code": "WELCOME10", "subtotal": 17998, "currency": CURRENCY},
    "POST /api/inventory/{product_id}/adjust": {"delta": -3, "reason": "cycle count"},
}
