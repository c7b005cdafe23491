"""The Redis client (cache, rate limits, token revocation, pub/sub)."""

from __future__ import annotations

from redis.asyncio import Redis

from core.errors import DependencyUnavailable
from core.instrumentation import trace_redis
from core.settings import Settings
from core.telemetry import Tracing


def create_redis(settings: Settings, *, tracing: Tracing | None = None) -> Redis:
    """The client for ``REDIS_URL``; with ``tracing`` that exports, a span per command."""
    if not settings.redis_url:
        raise DependencyUnavailable(
            "no Redis configured: start the stack with `shop dev` (or pass its --data-dir), "
            "or set REDIS_URL",
            code="redis_not_configured",
        )
    client = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )
    trace_redis(client, tracing)
    return client
