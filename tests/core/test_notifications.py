"""``ChannelListener``: one LISTEN connection fanned out by key, against real PostgreSQL;
``Lease``: how long a stream waiting on it is served."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from core.db import asyncpg_dsn
from core.notifications import ChannelListener, Lease, Waiter
from core.settings import Settings

CHANNEL = "shop_test_fanout"


async def test_a_notification_wakes_the_waiters_of_its_key_only(settings: Settings) -> None:
    dsn = asyncpg_dsn(settings)
    listener = ChannelListener(dsn, CHANNEL)
    sender = await asyncpg.connect(dsn)
    try:
        with listener.watch("a") as a1, listener.watch("a") as a2, listener.watch("b") as b:
            assert listener.watching("a") == 2
            # The first connection wakes every waiter: whatever they read before it is
            # looked at again.
            assert await a1.wait(30)
            assert await a2.wait(30)
            assert await b.wait(30)
            assert listener.connections == 1
            await sender.execute("SELECT pg_notify($1, 'a')", CHANNEL)
            assert await a1.wait(30)
            assert await a2.wait(30)
            assert listener.deliveries == 2
            assert not b.pending  # not its key
            assert not a1.pending
            await sender.execute("SELECT pg_notify($1, 'b')", CHANNEL)
            assert await b.wait(30)
        assert listener.watching("a") == 0
        assert listener.watching("b") == 0
    finally:
        await sender.close()
        await listener.aclose()


async def test_a_dropped_connection_is_reopened_and_every_waiter_woken(
    settings: Settings,
) -> None:
    dsn = asyncpg_dsn(settings)
    listener = ChannelListener(dsn, CHANNEL)
    admin = await asyncpg.connect(dsn)
    try:
        with listener.watch("a") as waiter:
            assert await waiter.wait(30)  # connected
            first = listener.backend_pid
            assert first is not None
            await admin.execute("SELECT pg_terminate_backend($1)", first)
            # No notification was sent: the reconnection itself wakes the waiter.
            assert await waiter.wait(30)
            assert listener.connections == 2
            assert listener.backend_pid not in (None, first)
            await admin.execute("SELECT pg_notify($1, 'a')", CHANNEL)
            assert await waiter.wait(30)
            assert listener.deliveries == 1
    finally:
        await admin.close()
        await listener.aclose()


async def test_a_lease_is_rechecked_while_wake_ups_keep_coming() -> None:
    """A stream woken more often than its lease is rechecked (a busy user's notifications)
    still has the revocation noticed, and one past its token's expiry waits no more."""
    asked: list[bool] = []

    async def revoked_after_the_first_ask() -> bool:
        asked.append(True)
        return len(asked) < 2

    lease = Lease(datetime.now(UTC) + timedelta(hours=1), revoked_after_the_first_ask, 0.05)
    waiter = Waiter("user_busy")
    woken = 0
    async with asyncio.timeout(30):
        while True:
            waiter.wake()  # a notification before each wait: the wait never times out
            if not await lease.wait(waiter):
                break
            woken += 1
            await asyncio.sleep(0.01)
    assert len(asked) == 2
    assert woken >= 1

    expired = Lease(datetime.now(UTC) - timedelta(seconds=1), revoked_after_the_first_ask, 60)
    waiter.wake()
    assert not await expired.wait(waiter)
