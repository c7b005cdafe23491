"""Listing and detail responses cached in Redis, invalidated by a catalogue version.

Every catalogue write bumps ``catalog:version`` once it has committed; cache keys carry
the version read *before* the database was queried. A reader that raced a write can
therefore only file its (possibly old) result under the old version, which nobody reads
again: after an update returns, no stale price is served. Entries also expire (TTL), so
a bump lost to a Redis hiccup heals by itself. Redis trouble never fails a request: the
cache is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
VERSION_KEY = "catalog:version"


class CatalogCache:
    def __init__(self, redis: Redis, ttl_seconds: int = 60) -> None:
        self.redis = redis
        self.ttl = ttl_seconds

    @staticmethod
    def _key(version: str, kind: str, params: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        return f"catalog:{version}:{kind}:{digest.hexdigest()[:32]}"

    async def version(self) -> str | None:
        try:
            return str(await self.redis.get(VERSION_KEY) or "0")
        except RedisError as exc:
            log.warning("catalogue cache unavailable: %s", exc)
            return None

    async def get(self, version: str | None, kind: str, params: dict[str, Any]) -> Any:
        if version is None:
            return None
        try:
            raw = await self.redis.get(self._key(version, kind, params))
        except RedisError:
            return None
        return orjson.loads(raw) if raw else None

    async def put(
        self,
        version: str | None,
        kind: str,
        params: dict[str, Any],
        value: Any,
        *,
        ttl_seconds: int | None = None,
    ) -> None:
        """``ttl_seconds`` shortens the entry's life, e.g. to a discount window's edge."""
        if version is None or (ttl_seconds is not None and ttl_seconds <= 0):
            return
        ttl = min(self.ttl, ttl_seconds) if ttl_seconds else self.ttl
        with contextlib.suppress(RedisError):
            await self.redis.set(self._key(version, kind, params), orjson.dumps(value), ex=ttl)

    async def invalidate(self) -> None:
        await self.redis.incr(VERSION_KEY)
