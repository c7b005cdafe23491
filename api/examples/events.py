"""Examples of the event relay's admin (staff): deliveries, one event, subscribers and
replays. The event is the order of ``orders.py`` being created; the CRM was down and
the delivery is being replayed."""

from __future__ import annotations

from api.examples.common import CREATED_AT, CURRENCY, ORDER_ID, PRODUCT_ID, USER_ID, page

EVENT_ID = "evt_01JEX5D8F1G2H3J4K5M6N7P8Q9"
DATA = {
    "orderId": ORDER_ID,
    "userId": USER_ID,
    "total": 18060,
    "currency": CURRENCY,
    "items": [{"productId": PRODUCT_ID, "quantity": 2, "unitPrice": 8999}],
}
FAILED = {
    "subscriber": "crm",
    "status": "failed",
    "generation": 1,
    "attempts": 3,
    "lastError": "CrmUnavailable: HubSpot answered 503",
    "createdAt": "2026-12-06T14:30:04Z",
    "startedAt": "2026-12-06T14:30:04Z",
    "finishedAt": "2026-12-06T14:31:40Z",
    "workflowId": f"events-{EVENT_ID}-5f0c2a9d41b7e3c8",
}
REPLAYING = FAILED | {
    "status": "pending",
    "generation": 2,
    "attempts": 0,
    "startedAt": None,
    "finishedAt": None,
    "workflowId": None,
}
EVENT = {
    "type": "order.created",
    "aggregateType": "order",
    "aggregateId": ORDER_ID,
    "seq": 4211,
    "data": DATA,
}

RESPONSES: dict[str, dict[int, object]] = {
    "GET /api/admin/events": {
        200: page(FAILED | EVENT | {"eventId": EVENT_ID, "eventCreatedAt": CREATED_AT}, total=3)
    },
    "POST /api/admin/events/replay": {202: {"replayed": 3, "events": 3, "more": False}},
    "GET /api/admin/events/subscribers": {
        200: [
            {
                "subscriber": "crm",
                "eventType": "order.created",
                "knownAt": "2026-12-06T14:29:30Z",
                "live": True,
                "pending": 0,
                "oldestPendingAt": None,
                "dropAfter": None,
            }
        ]
    },
    "GET /api/admin/events/{event_id}": {
        200: EVENT
        | {
            "id": EVENT_ID,
            "createdAt": CREATED_AT,
            "dispatchedAt": "2026-12-06T14:30:04Z",
            "deliveredAt": None,
            "deliveries": [FAILED],
        }
    },
    "POST /api/admin/events/{event_id}/replay": {
        202: {"eventId": EVENT_ID, "deliveries": [REPLAYING]}
    },
}
REQUESTS: dict[str, object] = {}
