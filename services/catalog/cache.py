"""Listing responses cached in Redis, invalidated by a catalogue version, with a copy of
the hot entries in each process (where product details are kept alone: ``put_local``).

Every catalogue write bumps ``catalog:version`` once it has committed; cache keys carry
the version read *before* the database was queried. A reader that raced a write can
therefore only file its (possibly old) result under the old version, which nobody reads
again: after an update returns, no stale price is served. Entries also expire (TTL), so
a bump lost to a Redis hiccup heals by itself. Redis trouble never fails a request: the
cache is skipped.

The process's copy (``LocalEntries``) is keyed the same way and consulted with the
version the process holds (``services.catalog.versions``: read from Redis when a bump's
notification arrives, not per request), so it is invalidated across every process by the
same bump; an entry copied from Redis keeps the Redis entry's expiry (a discount window's
edge), never longer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
VERSION_KEY = "catalog:version"
# Hot listing pages, product details and counts one process keeps (a few MB at most).
LOCAL_ENTRIES = 4_096
# An entry asked for: its kind ("page", "count", ...) and what it depends on.
Entry = tuple[str, dict[str, Any]]


class LocalEntries:
    """One process's copy of cache entries of the current catalogue version.

    Entries are kept encoded (orjson, as Redis holds them) and decoded on each read, so
    every reader gets a copy of its own. Kept as decoded dicts and lists, the 4,096 pages
    of a busy process were ~137,000 containers that every full pass of the garbage
    collector walked while the event loop waited: 60 ms a pass in process, 80-140 ms
    under the catalogue bench, the searches' p99 (docs/benchmarks.md *Catalogue reads*). Bytes are
    not tracked by the collector; decoding a page of 20 costs ~40 us on a hit. A new
    version empties the copy (its entries could never be read again)."""

    def __init__(
        self, max_entries: int = LOCAL_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._version: str | None = None
        self._entries: dict[str, tuple[float, bytes]] = {}

    def get(self, version: str, key: str) -> Any:
        if version != self._version:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, raw = entry
        if self.clock() >= expires:
            self._entries.pop(key, None)
            return None
        return orjson.loads(raw)

    def expires(self, version: str, key: str) -> float | None:
        """When the entry expires (on ``clock``), if this copy holds it."""
        if version != self._version:
            return None
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, version: str, key: str, raw: bytes, ttl_seconds: float) -> None:
        """``raw``: the entry as orjson encodes it."""
        if ttl_seconds <= 0 or self.max_entries <= 0:
            return
        if version != self._version:
            # A new version (or, rarely, the old one from a request that raced a write;
            # the next request of the new version starts over again).
            self._entries.clear()
            self._version = version
        elif len(self._entries) >= self.max_entries:
            # The oldest entry goes (dicts keep insertion order).
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (self.clock() + ttl_seconds, raw)


class CatalogCache:
    def __init__(
        self, redis: Redis, ttl_seconds: int = 60, local: LocalEntries | None = None
    ) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.local = local

    @staticmethod
    def _key(version: str, kind: str, params: dict[str, Any]) -> str:
        # orjson: a third of the stdlib's time for these small dicts (same keys every
        # process, as long as every process runs the same code; a mixed deploy misses).
        digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str))
        return f"catalog:{version}:{kind}:{digest.hexdigest()[:32]}"

    async def version(self) -> str | None:
        """The version in Redis now (a round trip; the API holds it in ``CatalogVersion``)."""
        return await read_version(self.redis)

    async def get(self, version: str | None, kind: str, params: dict[str, Any]) -> Any:
        """The entry, or None: a copy of its own (decoded for this reader)."""
        [found] = await self.get_many(version, [(kind, params)])
        return found

    def get_local(self, version: str | None, kind: str, params: dict[str, Any]) -> Any:
        """The entry from this process's copy only (no round trip), or None."""
        if version is None or self.local is None:
            return None
        return self.local.get(version, self._key(version, kind, params))

    def local_expiry(self, version: str | None, kind: str, params: dict[str, Any]) -> float | None:
        """When this process's copy of the entry expires, if it holds one."""
        if version is None or self.local is None:
            return None
        return self.local.expires(version, self._key(version, kind, params))

    async def get_many(self, version: str | None, entries: list[Entry]) -> list[Any]:
        """Each entry (None where there is none), those not in this process's copy read
        from Redis in one round trip."""
        if version is None:
            return [None] * len(entries)
        keys = [self._key(version, kind, params) for kind, params in entries]
        found: list[Any] = [None] * len(keys)
        if self.local is not None:
            found = [self.local.get(version, key) for key in keys]
        missing = [n for n, value in enumerate(found) if value is None]
        if not missing:
            return found
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for n in missing:
                    pipe.get(keys[n])
                    if self.local is not None:
                        pipe.pttl(keys[n])
                replies = await pipe.execute()
        except RedisError:
            return found
        step = 1 if self.local is None else 2
        for i, n in enumerate(missing):
            raw = replies[i * step]
            if not raw:
                continue
            found[n] = orjson.loads(raw)
            remaining_ms = replies[i * step + 1] if self.local is not None else None
            if self.local is not None and isinstance(remaining_ms, int) and remaining_ms > 0:
                self.local.put(version, keys[n], raw, remaining_ms / 1000)
        return found

    def put_local(
        self,
        version: str | None,
        kind: str,
        params: dict[str, Any],
        value: Any,
        *,
        ttl_seconds: int | None = None,
    ) -> None:
        """Into this process's copy only, for as long as ``put`` would keep it."""
        if version is None or self.local is None:
            return
        if ttl_seconds is not None and ttl_seconds <= 0:
            return
        ttl = min(self.ttl, ttl_seconds) if ttl_seconds else self.ttl
        self.local.put(version, self._key(version, kind, params), orjson.dumps(value), ttl)

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
        await self.put_many(version, [(kind, params, value, ttl_seconds)])

    async def put_many(
        self, version: str | None, entries: list[tuple[str, dict[str, Any], Any, int | None]]
    ) -> None:
        """Each ``(kind, params, value, ttl_seconds)`` as ``put`` does, in one round trip."""
        if version is None:
            return
        writes: list[tuple[str, bytes, int]] = []
        for kind, params, value, ttl_seconds in entries:
            if ttl_seconds is not None and ttl_seconds <= 0:
                continue
            ttl = min(self.ttl, ttl_seconds) if ttl_seconds else self.ttl
            key, raw = self._key(version, kind, params), orjson.dumps(value)
            if self.local is not None:
                self.local.put(version, key, raw, ttl)
            writes.append((key, raw, ttl))
        if not writes:
            return
        with contextlib.suppress(RedisError):
            if len(writes) == 1:
                [(key, raw, ttl)] = writes
                await self.redis.set(key, raw, ex=ttl)
                return
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, raw, ttl in writes:
                    pipe.set(key, raw, ex=ttl)
                await pipe.execute()

    async def invalidate(self) -> int:
        """A new version (the processes are told by ``CatalogVersion.bump``)."""
        return int(await self.redis.incr(VERSION_KEY))


async def read_version(redis: Redis) -> str | None:
    """The catalogue version in Redis, or None when Redis is unavailable (no cache)."""
    try:
        return str(await redis.get(VERSION_KEY) or "0")
    except RedisError as exc:
        log.warning("catalogue cache unavailable: %s", exc)
        return None
