"""Examples of liveness and readiness (outside /api)."""

from __future__ import annotations

RESPONSES: dict[str, dict[int, object]] = {
    "GET /health": {200: {"status": "ok"}},
    "GET /ready": {
        200: {"status": "ready", "checks": {"database": "ok", "redis": "ok", "temporal": "ok"}}
    },
}
REQUESTS: dict[str, object] = {}
