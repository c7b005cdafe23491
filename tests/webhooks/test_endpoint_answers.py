"""What an endpoint answers is read only as far as it is needed, and within the request's
time limit: ``WebhookSender.send`` against raw HTTP servers on 127.0.0.1, the rows
committed to the real database (and deleted after)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.stack.process import free_port
from core.db import SessionFactory, create_session_factory, transaction
from core.settings import Settings
from models.webhooks import WebhookEndpoint
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import new_secret
from services.webhooks.repository import WebhookEndpointRepository
from services.webhooks.sending import (
    ERROR_BODY_CHARS,
    WebhookSender,
    WebhookSendFailed,
    webhook_client,
)

# Far more than an answer's start: read whole, the old sender held all of it in memory.
HUGE = 64 * 1024 * 1024
# A hang guard only: the sends below end within a second or two.
GUARD_SECONDS = 60


@dataclass
class Served:
    url: str
    # Bytes of the answer's body the client took in (written and drained), per path.
    sent: dict[str, int] = field(default_factory=dict)


Answer = Callable[["Served", str, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[Served]:
    """An HTTP server on 127.0.0.1 that reads a request's head and leaves the answer to
    ``answer(served, path, writer)``; its connections end with it."""
    port = free_port()
    served = Served(url=f"http://127.0.0.1:{port}")
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode().strip("/")
            await answer(served, path, writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield served
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def huge_answer(served: Served, path: str, writer: asyncio.StreamWriter) -> None:
    """``HUGE`` bytes of body, under the status the path names (``/500``, ``/200``)."""
    writer.write(f"HTTP/1.1 {path} X\r\nContent-Length: {HUGE}\r\n\r\n".encode())
    chunk = b"x" * 65536
    served.sent[path] = 0
    while served.sent[path] < HUGE:
        writer.write(chunk)
        await writer.drain()
        served.sent[path] += len(chunk)


async def trickling_answer(served: Served, path: str, writer: asyncio.StreamWriter) -> None:
    """A byte every 0.1 s for ever: each read gets something long before a read timeout,
    and the answer's head never ends."""
    writer.write(b"HTTP/1.1 200 OK\r\n")
    while True:
        writer.write(b"X")
        await writer.drain()
        await asyncio.sleep(0.1)


async def _delivery(sessions: SessionFactory, url: str, made: list[str]) -> tuple[str, str]:
    """An endpoint at ``url`` with one pending delivery: (event id, endpoint id)."""
    event_id = f"evt_{uuid4().hex[:12]}"
    async with transaction(sessions) as session:
        endpoint = await WebhookEndpointRepository(session).add(
            WebhookEndpoint(url=url, event_types=["test.none"], secret=new_secret())
        )
        await WebhookDeliveryRepository(session).add_once(
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type="order.created",
            payload={"type": "order.created", "timestamp": "t", "data": {}},
        )
    made.append(endpoint.id)
    return event_id, endpoint.id


async def _last_error(sessions: SessionFactory, event_id: str, endpoint_id: str) -> str | None:
    async with sessions() as session:
        found = await WebhookDeliveryRepository(session).target(event_id, endpoint_id)
        assert found is not None
        [attempt] = await WebhookDeliveryRepository(session).attempts_of(found[0].id)
    return attempt.error


async def test_a_huge_answer_is_not_read_whole(
    engine: AsyncEngine, settings: Settings, made: list[str]
) -> None:
    """A success's body is not read at all, a failure's only for the start kept in the
    attempt's error: before, the whole answer was read into the worker's memory (an
    endless one until the activity's timeout)."""
    sessions = create_session_factory(engine)
    async with (
        raw_server(huge_answer) as served,
        webhook_client(settings) as http,
        asyncio.timeout(GUARD_SECONDS),
    ):
        sender = WebhookSender(sessions, http, settings)
        event_id, endpoint_id = await _delivery(sessions, f"{served.url}/200", made)
        assert await sender.send(event_id, endpoint_id, 0) == "delivered"

        event_id, endpoint_id = await _delivery(sessions, f"{served.url}/500", made)
        with pytest.raises(WebhookSendFailed):
            await sender.send(event_id, endpoint_id, 0)
    assert await _last_error(sessions, event_id, endpoint_id) == (
        "HTTP 500: " + "x" * ERROR_BODY_CHARS
    )
    # At most what the sockets' buffers took in before the client closed.
    assert served.sent["200"] < HUGE // 4
    assert served.sent["500"] < HUGE // 4


async def test_an_answer_trickling_in_is_cut_at_the_request_s_time_limit(
    engine: AsyncEngine, settings: Settings, made: list[str]
) -> None:
    """WEBHOOK_TIMEOUT_SECONDS bounds the whole request: before, it bounded each read only,
    so an endpoint trickling its answer held the attempt until the activity timed out,
    and the attempt was never recorded."""
    sessions = create_session_factory(engine)
    quick = settings.model_copy(update={"webhook_timeout_seconds": 1.0})
    async with raw_server(trickling_answer) as served, webhook_client(quick) as http:
        event_id, endpoint_id = await _delivery(sessions, f"{served.url}/slow", made)
        sender = WebhookSender(sessions, http, quick)
        async with asyncio.timeout(GUARD_SECONDS):
            with pytest.raises(WebhookSendFailed):
                await sender.send(event_id, endpoint_id, 0)
    assert await _last_error(sessions, event_id, endpoint_id) == "timeout: no answer within 1 s"
