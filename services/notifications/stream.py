"""A user's notifications as they are written, pushed, never polled.

Each insert into ``notifications`` notifies ``shop_notification`` with the user's id (a
trigger, migration a7c0de140013), delivered when the subscriber's transaction commits.
The API process hears it on its one LISTEN connection (``core.notifications.
ChannelListener``, as ``subscribe``d channel) and wakes only that user's streams, which
then read what is new after the last id they sent, in a short session of their own: no
stream holds a database connection while it waits.

A user's ids increase in commit order (``NotificationRepository.add``), so "after the
last id sent" misses nothing, within a stream or across a reconnect (``Last-Event-ID``).
A stream opened "from now on" first sends where "now" is as an ``id:`` (an EventSource
keeps it as its last event id): one that drops before any notification came reconnects
after that, not from a later "now" that would skip what was written while it was away.
When the LISTEN connection is (re)established every stream reads again: a notification
committed while it was down was not heard.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from core.db import SessionFactory
from core.errors import ValidationFailed
from core.ids import IdPrefix, is_valid_id
from core.notifications import Lease, Waiter
from models.notifications import NotificationPublic
from services.notifications.repository import NotificationRepository

CHANNEL = "shop_notification"
# Read at most this many at a time (a stream resuming after a long absence).
BATCH = 100
# Where the stream of a user with no notification yet starts: before any id.
BEFORE_ANY = f"{IdPrefix.NOTIFICATION}_{'0' * 26}"


@dataclass(frozen=True)
class FollowedNotifications:
    """An open stream: the notifications after ``after``, as they come."""

    after: str
    notifications: AsyncIterator[NotificationPublic]

    def __aiter__(self) -> AsyncIterator[NotificationPublic]:
        return self.notifications


class NotificationFeed:
    """Hears ``shop_notification`` (a ``ChannelSubscriber``) and wakes the streams of the
    user each payload names."""

    def __init__(self, read_sessions: SessionFactory) -> None:
        self._read_sessions = read_sessions
        self._waiters: dict[str, set[Waiter]] = {}

    # --- ChannelSubscriber --------------------------------------------------------------
    def listening(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake_after_loss()

    def notified(self, payload: str) -> None:
        for waiter in self._waiters.get(payload, ()):
            waiter.wake()

    def lost(self) -> None:
        """Nothing to drop: each stream reads again when ``listening`` wakes it."""

    # --- streams ------------------------------------------------------------------------
    def watching(self, user_id: str) -> int:
        """How many streams of ``user_id`` wait here now (what tests look at)."""
        return len(self._waiters.get(user_id, ()))

    @contextlib.contextmanager
    def watch(self, user_id: str) -> Iterator[Waiter]:
        waiter = Waiter(user_id)
        self._waiters.setdefault(user_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            watching = self._waiters.get(user_id)
            if watching is not None:
                watching.discard(waiter)
                if not watching:
                    del self._waiters[user_id]

    async def newest_id(self, user_id: str) -> str | None:
        async with self._read_sessions() as session:
            return await NotificationRepository(session).newest_id(user_id)

    @contextlib.asynccontextmanager
    async def open(
        self, user_id: str, after_id: str | None, lease: Lease | None = None
    ) -> AsyncIterator[FollowedNotifications]:
        """A stream of the user's notifications after ``after_id`` (None: from now on),
        oldest first, then each one as it is committed, for as long as it is iterated
        (and ``lease`` holds: it ends once the caller's token expires or is revoked).
        Once open, nothing committed from then on is missed, and ``after`` says where it
        starts (what a client resumes after if it gets none of them)."""
        with self.watch(user_id) as waiter:
            # Watching before reading: one committed in between still wakes us.
            last = after_id if after_id is not None else await self.newest_id(user_id)
            yield FollowedNotifications(
                last or BEFORE_ANY, self._follow(user_id, waiter, last, lease)
            )

    async def _follow(
        self, user_id: str, waiter: Waiter, last: str | None, lease: Lease | None
    ) -> AsyncIterator[NotificationPublic]:
        while True:
            async with self._read_sessions() as session:
                rows = await NotificationRepository(session).after(user_id, last, BATCH)
            for row in rows:
                last = row.id
                yield NotificationPublic.of(row)
            if len(rows) < BATCH:
                if lease is None:
                    await waiter.wait(None)
                elif not await lease.wait(waiter):
                    return


class InvalidLastEventId(ValidationFailed):
    code = "invalid_last_event_id"
    title = "Last-Event-ID is not a notification id"


def resume_after(last_event_id: str | None) -> str | None:
    """The notification id a stream resumes after (None: from now on); a
    ``Last-Event-ID`` that is no notification id is ``InvalidLastEventId``."""
    if last_event_id is None or not last_event_id.strip():
        return None
    value = last_event_id.strip()
    if not is_valid_id(value, IdPrefix.NOTIFICATION):
        raise InvalidLastEventId(f"Last-Event-ID {value!r} is not a notification id (ntf_…)")
    return value
