"""The outbox relay loop: every worker process serving the events queue runs one.

It holds a raw asyncpg connection that ``LISTEN``s on ``shop_outbox`` (notified by every
outbox insert and every finished delivery, at commit) and runs a pass
(``services.events.relay``) on each notification, a burst of them coalesced into one
pass, and at least every ``EVENT_RELAY_POLL_SECONDS`` as a safety net. The slow poll also
restarts deliveries whose workflow is gone. If the database goes away it reconnects with
backoff; it never spins. Passes of several relays take turns under an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import asyncpg

from core.db import asyncpg_dsn
from core.settings import Settings
from services.events.deliveries import CHANNEL
from services.events.relay import RelayService
from temporal.clients.events import EventDeliveryWorkflows

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


class OutboxRelay:
    def __init__(
        self, settings: Settings, relay: RelayService, workflows: EventDeliveryWorkflows
    ) -> None:
        self._settings = settings
        self._relay = relay
        self._workflows = workflows
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._last_sweep = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Until ``stop()``: listen, pass, wait; reconnect with backoff on failure."""
        backoff = BACKOFF_FIRST_SECONDS
        while not self._stop.is_set():
            try:
                await self._listen_and_relay()
                backoff = BACKOFF_FIRST_SECONDS
            except Exception as exc:
                log.warning("outbox relay interrupted; reconnecting", extra={"error": repr(exc)})
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def _listen_and_relay(self) -> None:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(asyncpg_dsn(self._settings))
        lost = asyncio.Event()
        try:
            await conn.add_listener(CHANNEL, self._notified)
            conn.add_termination_listener(lambda _conn: lost.set())
            while not self._stop.is_set():
                # Cleared before the pass: a commit during the pass wakes the next one.
                self._wake.clear()
                result = await self._relay.run_pass(self._workflows.start_all)
                if self._sweep_due():
                    await self._restart_lost()
                if result.more:
                    continue
                await self._wait_for_work(lost)
                if lost.is_set():
                    raise ConnectionError("the LISTEN connection was closed")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self, lost: asyncio.Event) -> None:
        """A notification, the slow poll, the connection lost, or stop: whichever first."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self._wake, self._stop, lost)]
        try:
            await asyncio.wait(
                waits,
                timeout=self._settings.event_relay_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _sweep_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_sweep < self._settings.event_relay_poll_seconds:
            return False
        self._last_sweep = now
        return True

    async def _restart_lost(self) -> None:
        """Deliveries started long ago whose workflow no longer runs get a fresh one."""
        age = timedelta(seconds=self._settings.event_restart_after_seconds)
        await self._relay.restart_lost(age, self._workflows.is_running)
