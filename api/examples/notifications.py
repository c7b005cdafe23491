"""Examples of the signed-in user's notifications (the answers are in the router)."""

from __future__ import annotations

RESPONSES: dict[str, dict[int, object]] = {}
REQUESTS: dict[str, object] = {
    "POST /api/notifications/read-all": {"upTo": "ntf_01JEX4Q8Z3K5M7N9P1R3T5V7X9"},
    "POST /api/events/stream-tickets": {
        "path": "/api/orders/ord_01JEX4Q2A8B0C2D4E6F8G0H2J4/events"
    },
}
