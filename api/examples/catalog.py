"""Examples of the catalog: categories, products and their reviews."""

from __future__ import annotations

from api.examples.common import (
    CATEGORY_ID,
    CREATED_AT,
    CURRENCY,
    PARENT_CATEGORY_ID,
    PRODUCT_ID,
    UPDATED_AT,
    USER_ID,
    page,
)

CATEGORY = {
    "id": CATEGORY_ID,
    "name": "Headphones",
    "slug": "headphones",
    "parentId": PARENT_CATEGORY_ID,
    "children": [],
}
TREE = [
    {
        "id": PARENT_CATEGORY_ID,
        "name": "Audio",
        "slug": "audio",
        "parentId": None,
        "children": [CATEGORY],
    }
]
PRODUCT = {
    "id": PRODUCT_ID,
    "sku": "HP-WL-100",
    "name": "Wireless Headphones",
    "slug": "wireless-headphones",
    "description": "Over-ear, 30 hours of battery, active noise cancelling.",
    "categoryId": CATEGORY_ID,
    "price": 9999,
    "effectivePrice": 8999,
    "currency": CURRENCY,
    "compareAtPrice": 12999,
    "images": ["https://cdn.example.com/products/wireless-headphones/front.jpg"],
    "attributes": {"color": "black", "connectivity": "bluetooth 5.3"},
    "active": True,
    "lowStockThreshold": 10,
    "autoReorder": True,
    "reorderQuantity": 50,
    "rating": {"average": 4.6, "count": 13, "histogram": {"1": 0, "2": 1, "3": 0, "4": 3, "5": 9}},
    "available": 42,
    "createdAt": CREATED_AT,
    "updatedAt": UPDATED_AT,
}
NEW_PRODUCT = PRODUCT | {
    "effectivePrice": 9999,
    "rating": {"average": None, "count": 0, "histogram": dict.fromkeys("12345", 0)},
    "available": 0,
    "updatedAt": CREATED_AT,
}
PRODUCT_CREATE = {
    "sku": "HP-WL-100",
    "name": "Wireless Headphones",
    "description": "Over-ear, 30 hours of battery, active noise cancelling.",
    "categoryId": CATEGORY_ID,
    "price": 9999,
    "currency": CURRENCY,
    "compareAtPrice": 12999,
    "images": ["https://cdn.example.com/products/wireless-headphones/front.jpg"],
    "attributes": {"color": "black", "connectivity": "bluetooth 5.3"},
    "lowStockThreshold": 10,
    "autoReorder": True,
    "reorderQuantity": 50,
}
REVIEW = {
    "id": "rev_01JEY0R1S2T3V4W5X6Y7Z8A9B0",
    "productId": PRODUCT_ID,
    "userId": USER_ID,
    "rating": 5,
    "title": "Quiet and comfortable",
    "body": "Wore them on a 9-hour flight: the battery had half left.",
    "verifiedPurchase": True,
    "hidden": False,
    "createdAt": CREATED_AT,
}

RESPONSES: dict[str, dict[int, object]] = {
    "GET /api/categories": {200: TREE},
    "POST /api/categories": {201: CATEGORY},
    "GET /api/products": {200: page(PRODUCT, total=87) | {"totalExact": True}},
    "POST /api/products": {201: NEW_PRODUCT},
    "GET /api/products/{key}": {200: PRODUCT},
    "PATCH /api/products/{key}": {200: PRODUCT},
    "PUT /api/products/{key}": {200: PRODUCT},
    "GET /api/products/{key}/reviews": {200: page(REVIEW, total=13)},
    "POST /api/products/{key}/reviews": {201: REVIEW},
}
REQUESTS: dict[str, object] = {
    "POST /api/categories": {
        "name": "Headphones",
        "slug": "headphones",
        "parentId": PARENT_CATEGORY_ID,
    },
    "POST /api/products": PRODUCT_CREATE,
    "PATCH /api/products/{key}": {"price": 8999, "compareAtPrice": 9999},
    "PUT /api/products/{key}": PRODUCT_CREATE | {"slug": "wireless-headphones", "active": True},
    "POST /api/products/{key}/reviews": {
        "rating": 5,
        "title": "Quiet and comfortable",
        "body": "Wore them on a 9-hour flight: the battery had half left.",
    },
    "PATCH /api/products/{key}/reviews/{review_id}": {"hidden": True},
}
