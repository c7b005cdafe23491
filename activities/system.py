"""System activities: prove that a worker on a queue can reach what activities need.

Every worker registers ``system.probe`` on each queue it serves, so ``StackProbeWorkflow``
can check that each queue has a live worker wired to the database and Redis.
"""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from core.db import ping


class ProbeInput(BaseModel):
    queue: str


class ProbeResult(BaseModel):
    queue: str
    host: str
    pid: int
    database: bool
    redis: bool


class SystemActivities:
    def __init__(self, engine: AsyncEngine, redis: Redis, queue: str) -> None:
        self._engine = engine
        self._redis = redis
        self._queue = queue

    @activity.defn(name="system.probe")
    async def probe(self, input: ProbeInput) -> ProbeResult:
        """Read-only, so safe to run any number of times."""
        if input.queue != self._queue:
            # A mis-registered worker would otherwise vouch for a queue it does not serve.
            raise RuntimeError(f"probe for {input.queue!r} reached the {self._queue!r} worker")
        await ping(self._engine)
        await self._redis.ping()
        return ProbeResult(
            queue=self._queue,
            host=socket.gethostname(),
            pid=os.getpid(),
            database=True,
            redis=True,
        )
