"""The relay's shared counters (``core.shared_metrics``): counted by the delivery
activities in any worker, reported by every API process's ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis.asyncio import Redis

from core.shared_metrics import SharedCounters, declare

log = logging.getLogger(__name__)

EVENTS_DELIVERED = declare(
    "shop_events_delivered",
    "Event deliveries completed by a subscriber's handler",
    ("subscriber", "type"),
)
EVENTS_FAILED = declare(
    "shop_events_failed",
    "Failed attempts of a subscriber's handler (each retry counts)",
    ("subscriber", "type"),
)


async def count(redis: Redis, name: str, labels: Mapping[str, str]) -> None:
    """Best effort: a counter Redis could not take never fails the delivery it counts."""
    try:
        await SharedCounters(redis).incr(name, labels)
    except Exception as exc:
        log.warning("event counter not incremented", extra={"counter": name, "error": repr(exc)})
