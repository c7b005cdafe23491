"""The Redis client (cache, rate limits, token revocation, pub/sub)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from core.errors import DependencyUnavailable
from core.instrumentation import trace_redis
from core.settings import Settings
from core.telemetry import Tracing

# Opening a connection (the TCP connect and the handshake) is tried this many more times,
# with jittered backoff from 10 ms up to 0.5 s: a burst of requests each opening a pooled
# connection on a loaded machine could see one connect outlast its 2 s timeout, a 503 for
# the shopper. A command is sent once: after it went out its effect is unknown (an INCR
# of a rate limit, an idempotency lease's script, a publish), so it is never repeated.
CONNECT_RETRIES = 3


class _RetriedConnect(AbstractConnection):
    """Mixed into the pool's connection class: ``connect`` is retried, commands are not.

    The connection's own ``retry`` (redis-py's, which would also resend a command whose
    answer timed out) stays at none; ``Redis.from_url`` sets none.
    """

    async def connect(self) -> None:
        retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.5), CONNECT_RETRIES)
        await retry.call_with_retry(super().connect, lambda _error: self.disconnect())


_retried: dict[str, type[AbstractConnection]] = {}


def _with_retried_connect(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    # The URL picks the class (TCP, TLS for rediss://, a Unix socket): each gets the mixin,
    # made once per class.
    name = f"RetriedConnect{connection_class.__name__}"
    if name not in _retried:
        _retried[name] = type(name, (_RetriedConnect, connection_class), {})
    return _retried[name]


def create_redis(settings: Settings, *, tracing: Tracing | None = None) -> Redis:
    """The client for ``REDIS_URL``; with ``tracing`` that exports, a span per command.

    A connection that cannot be opened is tried again (``CONNECT_RETRIES``); a command is
    sent once.
    """
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
    pool = client.connection_pool
    pool.connection_class = _with_retried_connect(pool.connection_class)
    trace_redis(client, tracing)
    return client
