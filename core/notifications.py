"""One PostgreSQL ``LISTEN`` connection per process, fanned out to in-process waiters.

A waiter watches one key (a notification's payload, e.g. an order id) and is woken by
each notification carrying it. A payload may add a detail after a space (``key detail``,
e.g. the order's status): the waiter keeps the latest one it heard (``heard``).

The connection is opened when the first waiter arrives and
kept for the life of the process; if it drops, it reconnects with backoff (never
spinning) and, once listening again, wakes *every* waiter: a notification sent while the
connection was down is lost, so each waiter re-checks what it is waiting for rather than
trusting that nothing happened. The first connection does the same, which covers a
waiter that read its state before the ``LISTEN`` was in place.

A wake-up means "look again", never "it changed": waiters compare what they read.

Other channels ride on the same connection (``subscribe``): a subscriber hears each
payload of its channel, that LISTEN is in place (from then on every commit's notification
reaches it) and that the connection is lost (from then on notifications may be missed, so
what it built from them is no longer to be trusted). The catalogue's stock view and
version are kept this way (issue #15).

A ``Lease`` bounds how long a waiter that serves a caller's live stream waits: until the
caller's token expires or is found revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0
# An idle LISTEN connection is probed this often (a dead peer is otherwise never noticed).
PROBE_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 5.0


class Waiter:
    """Woken by each notification of its key, and by every (re)connection."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._woken = asyncio.Event()
        self.idle = False  # blocked in ``wait`` (what tests and metrics look at)
        self._detail: str | None = None
        self._lost = False

    def wake(self, detail: str | None = None) -> None:
        if detail is not None:
            self._detail = detail
        self._woken.set()

    def wake_after_loss(self) -> None:
        """Woken by a (re)connection: notifications may have been lost meanwhile, so no
        detail heard before it can be trusted."""
        self._detail = None
        self._lost = True
        self._woken.set()

    def heard(self) -> tuple[str | None, bool]:
        """The detail of the latest notification heard since the last call (None if
        none carried one), and whether notifications may have been lost since then."""
        detail, lost = self._detail, self._lost
        self._detail, self._lost = None, False
        return detail, lost

    @property
    def pending(self) -> bool:
        """Woken, and not yet returned from ``wait`` since."""
        return self._woken.is_set()

    async def wait(self, seconds: float | None) -> bool:
        """True once woken (then re-armed), False if ``seconds`` (None: no limit) pass
        first.
        A wake-up that came while the waiter was busy is not lost: this returns at once."""
        if self._woken.is_set():
            self._woken.clear()
            return True
        self.idle = True
        try:
            await asyncio.wait_for(self._woken.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self.idle = False
        self._woken.clear()
        return True


class Lease:
    """How long a live stream may go on for the caller who opened it: until ``ends_at``
    (the access token it was opened with expires), and while ``still_valid`` answers
    True, asked again each time ``recheck_seconds`` have passed (a token revoked by a
    sign-out, a password change or the account's deletion). Without one, a stream opened
    once would be served for as long as its client stays, long after its token stopped
    opening anything else."""

    def __init__(
        self,
        ends_at: datetime,
        still_valid: Callable[[], Awaitable[bool]],
        recheck_seconds: float,
    ) -> None:
        self.ends_at = ends_at
        self._still_valid = still_valid
        self._recheck = recheck_seconds
        self._next_check: float | None = None

    async def wait(self, waiter: Waiter) -> bool:
        """``waiter.wait`` while the lease holds: True once woken, False once it is over
        (the stream ends). It is rechecked on time even while wake-ups keep coming."""
        clock = asyncio.get_running_loop().time
        if self._next_check is None:
            self._next_check = clock() + self._recheck  # checked when the stream opened
        while True:
            left = (self.ends_at - datetime.now(UTC)).total_seconds()
            if left <= 0:
                return False
            if clock() >= self._next_check:
                if not await self._still_valid():
                    return False
                self._next_check = clock() + self._recheck
            if await waiter.wait(min(left, self._next_check - clock())):
                return True


class ChannelSubscriber(Protocol):
    """What hears a channel of its own on the listener's connection."""

    def listening(self) -> None:
        """LISTEN is in place: every commit's notification from now on is heard."""

    def notified(self, payload: str) -> None:
        """A notification of the channel (called on the event loop, must not block)."""

    def lost(self) -> None:
        """The connection is gone: notifications may be missed until ``listening``."""


class ChannelListener:
    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._waiters: dict[str, set[Waiter]] = {}
        self._subscribers: dict[str, ChannelSubscriber] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection[Any] | None = None
        # How many times LISTEN was established, and notifications that woke a waiter:
        # what operators (and tests) read to tell the listener's state.
        self.connections = 0
        self.deliveries = 0

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[Waiter]:
        """A waiter for ``key`` while the block runs (starts listening if not yet)."""
        waiter = Waiter(key)
        self._waiters.setdefault(key, set()).add(waiter)
        self._ensure_running()
        try:
            yield waiter
        finally:
            watching = self._waiters.get(key)
            if watching is not None:
                watching.discard(waiter)
                if not watching:
                    del self._waiters[key]

    def subscribe(self, channel: str, subscriber: ChannelSubscriber) -> None:
        """``subscriber`` hears ``channel`` on this connection from its next (re)connection:
        subscribe before ``start``."""
        self._subscribers[channel] = subscriber

    def start(self) -> None:
        """Listen now (and for the life of the process), not only once a waiter comes."""
        self._ensure_running()

    def watching(self, key: str, *, idle: bool = False) -> int:
        """How many waiters watch ``key`` now (``idle``: only those blocked waiting)."""
        return sum(1 for w in self._waiters.get(key, ()) if w.idle or not idle)

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend holding the LISTEN, while connected."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        while True:
            try:
                await self._listen()
                backoff = BACKOFF_FIRST_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "LISTEN connection interrupted; reconnecting",
                    extra={"channel": self._channel, "error": repr(exc)},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def _listen(self) -> None:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()

        def terminated(_conn: object) -> None:
            lost.set()
            self._lose_subscribers()  # at once, not after the task has woken

        try:
            conn.add_termination_listener(terminated)
            await conn.add_listener(self._channel, self._notified)
            for channel, subscriber in self._subscribers.items():
                await conn.add_listener(channel, _heard_by(subscriber))
            self._conn = conn
            self.connections += 1
            for subscriber in self._subscribers.values():
                subscriber.listening()
            self._wake_all()  # whatever happened while nobody listened is looked at again
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), PROBE_SECONDS)
                if not lost.is_set():
                    # A peer gone without closing the socket is found by asking it.
                    await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_SECONDS)
            raise ConnectionError("the LISTEN connection was closed")
        finally:
            self._conn = None
            self._lose_subscribers()
            if lost.is_set() or conn.is_closed():
                conn.terminate()
            else:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        key, _, detail = payload.partition(" ")
        for waiter in self._waiters.get(key, ()):
            waiter.wake(detail or None)
            self.deliveries += 1

    def _lose_subscribers(self) -> None:
        for subscriber in self._subscribers.values():
            subscriber.lost()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake_after_loss()


def _heard_by(subscriber: ChannelSubscriber) -> Any:
    """An asyncpg listener callback handing the payload to ``subscriber``."""

    def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        subscriber.notified(payload)

    return heard


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Notify ``channel`` in ``session``'s transaction (sent when it commits)."""
    await session.exec(
        text("SELECT pg_notify(:channel, :payload)"),  # type: ignore[call-overload]
        params={"channel": channel, "payload": payload},
    )
