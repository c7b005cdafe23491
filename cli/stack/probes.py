"""What ``shop dev`` asks of the servers: one a URL variable names answers (PostgreSQL,
Redis, Temporal), the API is ready (``http_ok``), Temporal knows our search attributes,
a worker serves every queue (``probe_workers``, also ``shop admin probe``)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cli.stack.process import StackError
from core.settings import Settings


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def check_postgres(url: str) -> None:
    import asyncpg

    async def connect() -> None:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(connect())
    except Exception as exc:
        raise StackError(
            f"cannot reach PostgreSQL at DATABASE_URL {redact(url)}: {_reason(exc)}"
        ) from None


def check_redis(url: str) -> None:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        with Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3) as client:
            client.ping()
    except (RedisError, OSError) as exc:
        raise StackError(f"cannot reach Redis at REDIS_URL {redact(url)}: {_reason(exc)}") from None


def check_temporal(settings: Settings, address: str) -> None:
    from core.errors import DependencyUnavailable
    from temporal.client import connect

    async def probe() -> None:
        client = await connect(settings, timeout=5)
        await client.service_client.check_health()

    try:
        asyncio.run(probe())
    except (DependencyUnavailable, RuntimeError, OSError) as exc:
        raise StackError(
            f"cannot reach Temporal at TEMPORAL_ADDRESS {address}: {_reason(exc)}"
        ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


async def register_search_attributes(settings: Settings) -> None:
    from temporal.client import connect
    from temporal.search_attributes import ensure_search_attributes

    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)


async def probe_workers(settings: Settings, pickup_timeout: float = 30) -> list[str]:
    """Run ``StackProbeWorkflow`` over every queue; one report line per queue.

    Raises ``StackError`` naming each queue that no working worker serves.
    """
    from core.ids import ulid
    from temporal.client import connect
    from temporal.queues import ALL_QUEUES, TaskQueue
    from workflows.system import StackProbeInput, StackProbeWorkflow

    client = await connect(settings)
    result = await client.execute_workflow(
        StackProbeWorkflow.run,
        StackProbeInput(queues=[str(q) for q in ALL_QUEUES], pickup_timeout_seconds=pickup_timeout),
        id=f"stack-probe-{ulid()}",
        task_queue=str(TaskQueue.DEFAULT),
    )
    failed = [f"{q.queue}: {q.error}" for q in result.queues if not q.ok]
    if failed:
        raise StackError("workers are not serving every queue: " + "; ".join(failed))
    return [
        f"{q.queue:<14} ok  (worker pid {q.result.pid} on {q.result.host})"
        for q in result.queues
        if q.result is not None
    ]
