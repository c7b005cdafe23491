"""The Redis client (cache, rate limits, token revocation, pub/sub)."""

from __future__ import annotations

from redis.asyncio import Redis

from core.errors import DependencyUnavailable
from core.settings import Settings


def create_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise DependencyUnavailable(
            "no Redis configured: start the stack with `shop dev` (or pass its --data-dir), "
            "or set REDIS_URL",
            code="redis_not_configured",
        )
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )
