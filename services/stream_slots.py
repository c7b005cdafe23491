"""How many live streams (``/api/events/stream``, ``/api/orders/{id}/events``) one user
has open, across every API process: at most ``STREAM_MAX_PER_USER``.

Each open stream holds a slot in Redis: a member of the user's sorted set, scored with
when it stops counting. An open stream pushes that time on every third of
``STREAM_SLOT_TTL_SECONDS``, and gives the slot back when it ends; a stream of a process
that died (nothing gave its slot back) stops counting one TTL after its last renewal. A
stream over the cap is refused (429 ``too_many_streams``) rather than closing the user's
oldest: a client that reconnects in a loop (a bug, or many tabs) cannot end the streams
that work, and the refusal tells it to close one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TypeVar

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import RateLimited
from core.settings import Settings

log = logging.getLogger(__name__)
PREFIX = "streams:user"
T = TypeVar("T")

# KEYS[1]: the user's slots; ARGV: slot id, TTL (ms), the cap. Expired slots go first, then
# the count and the add happen in one step: parallel opens cannot all slip under the cap.
_TAKE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# The same slot counted one TTL from now (again, if it had lapsed meanwhile); the set
# lives as long as its last slot.
_RENEW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
_COUNT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], ms, '+inf')
"""


class TooManyStreams(RateLimited):
    code = "too_many_streams"
    title = "Too many live streams open"


@dataclass(frozen=True)
class StreamSlot:
    key: str
    slot_id: str


class StreamSlots:
    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> StreamSlots:
        return cls(
            redis,
            per_user=settings.stream_max_per_user,
            ttl_seconds=settings.stream_slot_ttl_seconds,
        )

    def __init__(self, redis: Redis, *, per_user: int, ttl_seconds: float) -> None:
        self.redis = redis
        self.per_user = per_user
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def _key(user_id: str) -> str:
        return f"{PREFIX}:{user_id}"

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_seconds * 1000))

    async def take(self, user_id: str) -> StreamSlot:
        """A slot for one more stream of ``user_id``, or ``TooManyStreams``."""
        slot = StreamSlot(self._key(user_id), uuid.uuid4().hex)
        taken = await self.redis.eval(_TAKE, 1, slot.key, slot.slot_id, self._ttl_ms, self.per_user)
        if not int(taken):
            raise TooManyStreams(
                f"{self.per_user} live streams are open for this account already; "
                "close one before opening another",
                limit=self.per_user,
            )
        return slot

    async def open_count(self, user_id: str) -> int:
        """How many of ``user_id``'s streams count now (what operators and tests read)."""
        return int(await self.redis.eval(_COUNT, 1, self._key(user_id)))

    async def renew(self, slot: StreamSlot) -> None:
        await self.redis.eval(_RENEW, 1, slot.key, slot.slot_id, self._ttl_ms)

    async def give_back(self, slot: StreamSlot) -> None:
        await self.redis.zrem(slot.key, slot.slot_id)

    async def _keep(self, slot: StreamSlot) -> None:
        while True:
            await asyncio.sleep(self.ttl_seconds / 3)
            try:
                await self.renew(slot)
            except RedisError as exc:  # tried again in a third of the TTL
                log.warning("stream slot not renewed: %s", exc)

    async def serve(
        self, slot: StreamSlot, events: AsyncGenerator[T, None]
    ) -> AsyncGenerator[T, None]:
        """``events``, holding ``slot`` while they are served (renewed), given back when
        they end, however they end (the client gone: the stream cancelled)."""
        keeper = asyncio.create_task(self._keep(slot))
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            keeper.cancel()
            # A stream ends by its client leaving: its task is cancelled, and would be
            # again at each await here. Shielded, bounded: past that, the TTL frees it.
            with anyio.move_on_after(5, shield=True):
                with contextlib.suppress(RedisError):
                    await self.give_back(slot)
