"""Writing notifications as the subscriber does, and reading the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from services.notifications.repository import NewNotification, NotificationRepository


async def write(engine: AsyncEngine, user_id: str, title: str, *, unnotified: bool = False) -> str:
    """A notification for ``user_id``, committed through the subscriber's own write (its
    trigger notifies the stream), for an event of its own. ``unnotified``: with triggers
    off for this transaction (a notification lost, as one sent while the LISTEN
    connection reconnects is)."""
    async with transaction(create_session_factory(engine)) as session:
        if unnotified:
            conn = await session.connection()
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        made = await NotificationRepository(session).add(
            NewNotification(
                user_id=user_id,
                kind="order_confirmed",
                title=title,
                body=f"{title}: the body",
                data={"orderId": "ord_test"},
                event_id=f"evt_{uuid4().hex}",
            )
        )
    assert made is not None
    return made


@dataclass
class SseEvent:
    event: str | None
    id: str | None
    data: str | None
    comment: str | None

    def json(self) -> dict[str, Any]:
        assert self.data is not None
        body: dict[str, Any] = json.loads(self.data)
        return body


async def sse_events(response: httpx.Response) -> AsyncGenerator[SseEvent, None]:
    """Each event (or comment block) of an open ``text/event-stream``."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")
            continue
        if fields:
            yield SseEvent(
                fields.get("event"), fields.get("id"), fields.get("data"), fields.get("comment")
            )
        fields = {}


async def next_notification(events: AsyncIterator[SseEvent], within: float = 30) -> SseEvent:
    """The next ``notification`` event (pings skipped), or fail after ``within`` s."""

    async with asyncio.timeout(within):
        async for event in events:
            if event.event == "notification":
                return event
    raise AssertionError("the stream ended")


# Long enough for a slow machine: bounds only a stream that should end by itself (before
# streams ended with their token, they never ended at all).
ENDS_WITHIN = 30


async def until_it_ends(events: AsyncIterator[SseEvent]) -> list[SseEvent]:
    """What the stream still sends until it ends by itself (fails if it does not)."""
    async with asyncio.timeout(ENDS_WITHIN):
        return [event async for event in events]
