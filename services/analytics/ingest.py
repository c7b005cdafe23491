"""The API's batch writer: tracked events wait in a bounded in-process buffer and are
written off the request path, one multi-row INSERT per batch.

A request only appends to the buffer (it waits, rather than dropping events, when the
buffer is full). A background task writes a batch every ``flush_interval`` seconds, or
as soon as ``batch_rows`` are waiting. A failed or too slow write keeps its rows, in
order, at the front of the buffer and is retried with a growing pause; rows are taken
off only once their transaction has committed, and their ids are made beforehand, so a
retry after a lost acknowledgement writes nothing twice. A row the database refuses as
data or over one of its limits (which request validation should make impossible) is
logged and dropped alone.
``aclose`` (the app's lifespan exit, which SIGTERM under uvicorn reaches too) writes
what is left before the process ends.

Events that must commit with a change (add_to_cart, checkout_start, …) do not come
here: ``AnalyticsRecorder`` adds them to the change's own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy.exc import DBAPIError

from core.db import SessionFactory
from core.ids import IdPrefix, new_id
from core.settings import Settings
from models.analytics import person_key
from models.base import utcnow
from services.analytics import AnalyticsRepository

log = logging.getLogger(__name__)

RETRY_INITIAL_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0


def _reason(error: BaseException) -> str:
    # The database's own message, not SQLAlchemy's (which quotes every row's values).
    cause = error.orig if isinstance(error, DBAPIError) else error
    return f"{type(cause).__name__}: {str(cause)[:300]}"


def _refused_as_data(error: DBAPIError) -> bool:
    """The database refused a value (SQLSTATE class 22, data exception, or 23, integrity
    violation) or a row over one of its limits (class 54, program limit exceeded: an
    index row over the btree's 2704 bytes was one): retrying the same row fails the same
    way. A timeout or a lost connection is not this: the same write is tried again."""
    state = getattr(error.orig, "sqlstate", None) or ""
    return state.startswith(("22", "23", "54"))


@dataclass(frozen=True)
class PendingEvent:
    """An event accepted but not yet written. ``created_at`` is when it happened."""

    event: str
    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None
    page: str | None = None
    referrer: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=lambda: new_id(IdPrefix.ANALYTICS))

    def row(self, linked: dict[str, str], erased: Collection[str] = ()) -> dict[str, Any]:
        """The table row; an anonymous id that signed in counts for its user. An event of
        an ``erased`` account (tracked before its erasure, written after) counts for its
        visitor alone, as an anonymous one: not for the account."""
        user = self.user_id or linked.get(self.anonymous_id or "")
        if user in erased:
            user = None
        return {
            "id": self.id,
            "event": self.event,
            "user_id": self.user_id if user else None,
            "session_id": self.session_id,
            "anonymous_id": self.anonymous_id,
            "person_id": person_key(user, self.anonymous_id, self.session_id, self.id),
            "page": self.page,
            "referrer": self.referrer,
            "properties": self.properties,
            "created_at": self.created_at,
        }


class EventBuffer:
    @classmethod
    def from_settings(cls, sessions: SessionFactory, settings: Settings) -> EventBuffer:
        return cls(
            sessions,
            batch_rows=settings.analytics_batch_rows,
            flush_interval=settings.analytics_flush_interval_ms / 1000,
            capacity=settings.analytics_buffer_rows,
            write_timeout=settings.analytics_write_timeout_seconds,
            shutdown_seconds=settings.analytics_shutdown_flush_seconds,
        )

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        batch_rows: int,
        flush_interval: float,
        capacity: int,
        write_timeout: float,
        shutdown_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.capacity = capacity
        self.write_timeout = write_timeout
        self.shutdown_seconds = shutdown_seconds
        self._pending: deque[PendingEvent] = deque()
        self._due = asyncio.Event()  # a full batch waits: write now
        self._freed = asyncio.Condition()  # rows were written: room in the buffer
        self._writing = asyncio.Lock()  # one write at a time, in order
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Consecutive failed writes (0 once one succeeds) and rows written in all.
        self.failures = 0
        self.written = 0
        self.refused = 0  # rows the database would not take (dropped, logged)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="analytics-batch-writer")

    async def add(self, events: Sequence[PendingEvent]) -> None:
        """Take events for writing; waits while the buffer is full (never drops)."""
        if not events:
            return
        async with self._freed:
            while self._pending and len(self._pending) + len(events) > self.capacity:
                self._due.set()
                await self._freed.wait()
            self._pending.extend(events)
        if self._closed:
            await self.flush()  # no writer any more (a request during shutdown)
        elif len(self._pending) >= self.batch_rows:
            self._due.set()

    async def flush(self) -> int:
        """Write everything waiting now; raises if a write fails (the rows stay). Rows
        added while it writes wait for the next flush: writing them too, the writer never
        waited for a batch under steady traffic, and wrote one or two rows a transaction
        (674 transactions for 1,032 searches, one after another in process)."""
        written = 0
        async with self._writing:
            waiting = len(self._pending)
            while waiting > 0:
                batch = list(islice(self._pending, min(self.batch_rows, waiting)))
                await self._write_refusing_bad_rows(batch)
                async with self._freed:
                    for _ in batch:
                        self._pending.popleft()
                    self._freed.notify_all()
                written += len(batch)
                waiting -= len(batch)
                self.written += len(batch)
                self.failures = 0
        return written

    async def _write_refusing_bad_rows(self, batch: list[PendingEvent]) -> None:
        try:
            await self._write(batch)
        except DBAPIError as error:
            if not _refused_as_data(error):
                raise
            # A row the database refuses (the request checks should have caught it) must
            # not hold every later event back for ever: the others go one at a time.
            for event in batch:
                try:
                    await self._write([event])
                except DBAPIError as refused:
                    if not _refused_as_data(refused):
                        raise
                    self.refused += 1
                    log.error(
                        "analytics event %s refused by the database: %s", event.id, _reason(refused)
                    )

    async def _write(self, batch: list[PendingEvent]) -> None:
        async with self.sessions() as session:
            repository = AnalyticsRepository(session)
            await repository.limit_statement_time(self.write_timeout)
            anonymous = {e.anonymous_id for e in batch if e.anonymous_id and not e.user_id}
            linked = await repository.linked_users(anonymous)
            # Held to the commit: an erasure waits for these rows (its subscriber then
            # pseudonymises them), or committed first and they count for no one.
            erased = await repository.erased_accounts(
                {e.user_id for e in batch if e.user_id} | set(linked.values()),
                hold=True,
            )
            await repository.insert_many([event.row(linked, erased) for event in batch])
            await session.commit()

    async def _run(self) -> None:
        while True:
            # Not ``wait_for``: on Python 3.11 it swallows a cancellation that arrives once
            # the event is set (a full batch at shutdown), and ``aclose`` waited for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._due.wait()
            self._due.clear()
            try:
                await self.flush()
            except Exception as error:
                self.failures += 1
                pause = min(RETRY_MAX_SECONDS, RETRY_INITIAL_SECONDS * 2 ** (self.failures - 1))
                log.warning(
                    "analytics write failed (%d events waiting); retrying in %.1f s: %s",
                    len(self._pending),
                    pause,
                    _reason(error),
                )
                await asyncio.sleep(pause)

    async def aclose(self) -> None:
        """Stop the background writer and write what is left, retrying for up to
        ``shutdown_seconds`` (then the remaining events are logged as lost)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = asyncio.get_running_loop().time() + self.shutdown_seconds
        pause = RETRY_INITIAL_SECONDS
        while self._pending:
            try:
                await self.flush()
            except Exception as error:
                if asyncio.get_running_loop().time() + pause > deadline:
                    log.error(
                        "analytics: %d events not written at shutdown: %s",
                        self.pending,
                        _reason(error),
                    )
                    return
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX_SECONDS, pause * 2)
