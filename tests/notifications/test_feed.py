"""The API process's notification feed: woken by the insert's NOTIFY on the process's one
LISTEN connection, re-reading after that connection is lost, and letting go of a stream
that ends."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.notifications import ChannelListener
from models.notifications import NotificationPublic
from services.notifications.stream import NotificationFeed
from tests.api.test_order_long_poll import until
from tests.factories import signed_up
from tests.notifications.helpers import write


async def test_the_feed_pushes_re_reads_after_a_lost_connection_and_lets_go(
    client: httpx.AsyncClient, app: FastAPI, engine: AsyncEngine
) -> None:
    user, _ = await signed_up(client)
    user_id = user["id"]
    feed: NotificationFeed = app.state.shop.notifications
    changes: ChannelListener = app.state.shop.order_changes
    await until(lambda: changes.backend_pid is not None, "the app listens")
    received: list[NotificationPublic] = []

    async def follow() -> None:
        async with feed.open(user_id, None) as notifications:
            async for notification in notifications:
                received.append(notification)

    following = asyncio.create_task(follow())
    await until(lambda: feed.watching(user_id) == 1, "the stream watches")
    first = await write(engine, user_id, "Pushed")
    await until(lambda: len(received) == 1, "the NOTIFY pushes it")
    assert received[0].id == first

    # Written with no NOTIFY while the LISTEN connection dies: once it listens again,
    # every stream reads what it may have missed.
    connections = changes.connections
    lost = await write(engine, user_id, "Lost", unnotified=True)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": changes.backend_pid})
    await until(lambda: changes.connections > connections, "the listener reconnects")
    await until(lambda: len(received) == 2, "the stream reads again")
    assert [n.id for n in received] == [first, lost]

    # The client leaves: the stream's waiter goes with it.
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await following
    assert feed.watching(user_id) == 0
