"""This process's catalogue version, pushed by a notification instead of read per request.

The cache's entries are filed under the catalogue version (``services.catalog.cache``),
which every catalogue write bumps in Redis once it has committed. Each read asked Redis
for it: a round trip that was a sixth of a cached read's time in the API (issue #15).
Now the write, once it has bumped the version, notifies ``shop_catalog`` (in a
transaction of its own, after the bump), and each API process, hearing it on its one
LISTEN connection (``core.notifications.ChannelListener``), reads the version from Redis
once and answers every request with it until the next notification:

- the process that made the write forgets its version before the write's response is
  sent, so its next request reads the new one from Redis: a write is served at once by
  the process that made it;
- another process serves the old version until the notification has arrived and it has
  read the new one (one notification and one Redis read after the write returns: about
  a millisecond on one machine);
- a version is read again after every notification (a reply that began before one is
  not kept), so two writes' notifications in either order leave the newest version, and
  a Redis that restarted from zero is followed;
- while the LISTEN is not in place (before the first connection, after a loss) every
  request reads the version from Redis, as before; the (re)connection reads it again.

Entries also expire (the cache's TTL, 60 s): a bump whose notification is lost (the
writer failed between the two) is served by every process within that, as a bump lost
to a Redis hiccup always was.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from core.notifications import notify
from services.catalog.cache import CatalogCache, read_version

CHANNEL = "shop_catalog"


async def announce_version(session: AsyncSession, version: int) -> None:
    """Tell every API process that the catalogue version moved (a transaction of its own
    on ``session``: the notification leaves when it commits)."""
    await notify(session, CHANNEL, str(version))
    await session.commit()


class CatalogVersion:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._value: str | None = None
        self._live = False
        self._changes = 0
        self._refresh: asyncio.Task[None] | None = None
        # Notifications heard, and reads from Redis (what tests and benchmarks look at).
        self.heard = 0
        self.reads = 0

    @property
    def known(self) -> str | None:
        """The version this process answers with, if it holds one (no round trip)."""
        return self._value

    async def current(self) -> str | None:
        """The catalogue version (None: Redis is unavailable, the cache is skipped)."""
        value = self._value
        if value is not None:
            return value
        self.reads += 1
        value = await read_version(self._redis)
        if self._live:
            self._start_refresh()  # e.g. after a refresh that Redis failed
        return value

    async def bump(self, session: AsyncSession) -> None:
        """After a catalogue write has committed: a new version in Redis, this process's
        next request reads it, and every other process is told (in a transaction of its
        own on ``session``)."""
        version = await CatalogCache(self._redis).invalidate()
        self._changed()
        await announce_version(session, version)

    # ``ChannelSubscriber``: called by the listener on the event loop.
    def listening(self) -> None:
        self._live = True
        self._changed()

    def lost(self) -> None:
        self._live = False
        self._changes += 1
        self._value = None

    def notified(self, payload: str) -> None:
        self.heard += 1
        self._changed()

    def _changed(self) -> None:
        """The version may have moved: read again (until then, each request reads it)."""
        self._changes += 1
        self._value = None
        if self._live:
            self._start_refresh()

    def _start_refresh(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refreshed())

    async def _refreshed(self) -> None:
        while self._live:
            seen = self._changes
            value = await read_version(self._redis)
            self.reads += 1
            if value is None:
                return  # Redis failed: requests read it themselves, and start this again
            if seen == self._changes and self._live:
                self._value = value
                return

    async def aclose(self) -> None:
        task, self._refresh = self._refresh, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
