"""Examples of the cart, its coupon and its share links. Two headphones at 99.99, 10 % off
automatically, then WELCOME10 takes 10.00 off; Massachusetts sales tax on the rest."""

from __future__ import annotations

from api.examples.common import CART_ID, CURRENCY, PRODUCT_ID, UPDATED_AT, USER_ID

LINE = {
    "productId": PRODUCT_ID,
    "name": "Wireless Headphones",
    "slug": "wireless-headphones",
    "quantity": 2,
    "unitPrice": 8999,
    "unitPriceAtAdd": 8999,
    "priceChanged": False,
    "lineTotal": 17998,
    "available": 42,
    "problem": None,
}
TOTALS = {
    "subtotal": 19998,
    "automaticDiscounts": 2000,
    "couponDiscount": 1000,
    "shipping": 0,
    "tax": 1062,
    "total": 18060,
}
NO_COUPON_TOTALS = TOTALS | {"couponDiscount": 0, "tax": 1124, "total": 19122}
EMPTY_TOTALS = dict.fromkeys(TOTALS, 0)
CART = {
    "id": CART_ID,
    "cartToken": None,
    "userId": USER_ID,
    "currency": CURRENCY,
    "items": [LINE],
    "couponCode": "WELCOME10",
    "couponProblem": None,
    "totals": TOTALS,
    "checkoutReady": True,
    "checkoutProblem": None,
    "updatedAt": UPDATED_AT,
}
GUEST_CART = CART | {
    "cartToken": "ct_Qm3kX9vT2pL8wR5nY7zB1cF4hJ6s",
    "userId": None,
    "couponCode": None,
    "totals": NO_COUPON_TOTALS,
}
EMPTY_CART = CART | {
    "items": [],
    "couponCode": None,
    "totals": EMPTY_TOTALS,
    "checkoutReady": False,
    "checkoutProblem": "cart_empty",
}
SHARE_TOKEN = "cs_Vb7nM2kQ9xT4pL6wR8zY1cF3hJ5s"
SHARED = {"items": [LINE], "totals": NO_COUPON_TOTALS, "currency": CURRENCY, "canEdit": True}

RESPONSES: dict[str, dict[int, object]] = {
    "GET /api/cart": {200: CART},
    "DELETE /api/cart": {200: EMPTY_CART},
    "POST /api/cart/items": {201: GUEST_CART},
    "PATCH /api/cart/items/{product_id}": {200: CART},
    "DELETE /api/cart/items/{product_id}": {200: EMPTY_CART},
    "POST /api/cart/coupon": {200: CART},
    "DELETE /api/cart/coupon": {200: CART | {"couponCode": None, "totals": NO_COUPON_TOTALS}},
    "POST /api/cart/share": {
        201: {
            "id": "share_01JEX5E6F7G8H9J0K1M2N3P4Q5",
            "token": SHARE_TOKEN,
            "url": f"http://localhost:3001/api/carts/shared/{SHARE_TOKEN}",
            "canEdit": True,
            "createdAt": UPDATED_AT,
        }
    },
    "GET /api/carts/shared/{share_token}": {200: SHARED},
    "POST /api/carts/shared/{share_token}/copy": {200: GUEST_CART},
    "POST /api/carts/shared/{share_token}/items": {200: SHARED},
}
REQUESTS: dict[str, object] = {
    "POST /api/cart/items": {"productId": PRODUCT_ID, "quantity": 2},
    "PATCH /api/cart/items/{product_id}": {"quantity": 2},
    "POST /api/cart/coupon": {"code": "WELCOME10"},
    "POST /api/cart/share": {"canEdit": True},
    "POST /api/carts/shared/{share_token}/items": {"productId": PRODUCT_ID, "quantity": 2},
}
