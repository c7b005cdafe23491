"""``relay_probe``: the subscriber of ``system.relay_probe``, for measuring the relay.

It records when it handled each probe event (in Redis, for an hour), so that
``shop bench events`` can measure the lag from an event's commit to its handler.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from services.events.subscribers import DomainEvent, Subscriber

PROBE_SUBSCRIBER = "relay_probe"
PROBE_TTL_SECONDS = 3600


def probe_key(event_id: str) -> str:
    return f"shop:events:probe:{event_id}"


def relay_probe(redis: Redis) -> Subscriber:
    async def handle(event: DomainEvent, session: AsyncSession) -> None:
        # Keyed by the event id: a repeat overwrites the same key, never adds one.
        await redis.set(probe_key(event.id), repr(time.time()), ex=PROBE_TTL_SECONDS)

    return Subscriber(PROBE_SUBSCRIBER, frozenset({EventType.RELAY_PROBE}), handle)
