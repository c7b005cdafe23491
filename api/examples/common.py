"""Ids, times and an address the examples share, so that one example's order is the
next one's order too (ids in our real formats: a prefix and a ULID)."""

from __future__ import annotations

USER_ID = "user_01JEX3Q4R5S6T7V8W9X0Y1Z2A3"
STAFF_ID = "user_01JEW0A1B2C3D4E5F6G7H8J9K0"
CATEGORY_ID = "cat_01JEW2C3D4E5F6G7H8J9K0M1N2"
PARENT_CATEGORY_ID = "cat_01JEW2C0A1B2C3D4E5F6G7H8J9"
PRODUCT_ID = "prod_01JEW3P4Q5R6S7T8V9W0X1Y2Z3"
OTHER_PRODUCT_ID = "prod_01JEW3P9Z8Y7X6W5V4T3S2R1Q0"
CART_ID = "cart_01JEX5C6D7E8F9G0H1J2K3M4N5"
ORDER_ID = "ord_01JEX5D8E9F0G1H2J3K4M5N6P7"
ORDER_LINE_ID = "oline_01JEX5D8EAB2C3D4E5F6G7H8J9"
PAYMENT_ID = "pay_01JEX5D9F0G1H2J3K4M5N6P7Q8"
SHIPMENT_ID = "shp_01JEX7S1T2V3W4X5Y6Z7A8B9C0"
FULFILLMENT_ID = "ful_01JEX6F1G2H3J4K5M6N7P8Q9R0"
RETURN_ID = "ret_01JEY2R3S4T5V6W7X8Y9Z0A1B2"
CURRENCY = "USD"

CREATED_AT = "2026-12-06T14:30:00Z"
UPDATED_AT = "2026-12-06T14:32:10Z"

ADDRESS = {
    "name": "Ada Lovelace",
    "street": "123 Main St",
    "city": "Boston",
    "state": "MA",
    "zip": "02101",
    "country": "US",
    "phone": "+1 617 555 0100",
}


def page(*items: object, total: int | None = None, limit: int = 20) -> dict[str, object]:
    """A list answer: ``items`` of page 1 and how many there are in all."""
    return {
        "items": list(items),
        "total": len(items) if total is None else total,
        "page": 1,
        "limit": limit,
    }
