"""A storefront page's own ``new EventSource(url)`` follows the caller's notifications,
and reconnects by itself after the server drops it, missing nothing.

The page is served from a port of its own on this machine (a storefront's dev server,
an allowed CORS origin; Chromium lets only a page served from the loopback call a
loopback API) and calls the API on another origin, as a web shop does: it asks for a
stream ticket with its Bearer token (``fetch``), then opens the stream with the ticket
(an EventSource cannot send ``Authorization``). The API is then stopped, as a deploy
stops a process, and a new one started on the same port: the browser's EventSource
reconnects with the same URL and ``Last-Event-ID``, and gets the notification written
while it was away, then the live ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.stack.process import free_port
from core.settings import Settings
from tests.browser.conftest import WatchedPage
from tests.factories import login, register
from tests.live import live_api
from tests.notifications.helpers import write

# With the other browser tests (one unit of work, run first); the API is served in the
# test's process, not by `shop dev`, so that the test can stop and start it.
pytestmark = pytest.mark.e2e

# Generous for a loaded machine: these only bound waits for things that must happen.
WITHIN_MS = 60_000
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Storefront</title>
<script>
  window.received = [];
  window.opens = 0;
  window.states = [];
  async function follow(api, token) {
    const answer = await fetch(api + "/api/events/stream-tickets", {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({path: "/api/events/stream"}),
    });
    if (answer.status !== 201) throw new Error("no ticket: " + answer.status);
    const ticket = await answer.json();
    const source = new EventSource(api + ticket.url);
    source.addEventListener("open", () => { window.opens += 1; });
    source.addEventListener("error", () => { window.states.push(source.readyState); });
    source.addEventListener("notification", (event) => {
      window.received.push({id: event.lastEventId, title: JSON.parse(event.data).title});
    });
  }
</script>
"""


@asynccontextmanager
async def storefront() -> AsyncIterator[str]:
    """``PAGE`` at every path of a port of its own; yields its origin."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()  # a connection Chromium opened ahead and did not use
            return
        body = PAGE.encode()
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        writer.write(body)
        await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        yield f"http://127.0.0.1:{port}"


async def _received(page: WatchedPage, count: int) -> list[dict[str, Any]]:
    await page.page.wait_for_function(
        f"window.received.length >= {count}", timeout=WITHIN_MS, polling=100
    )
    received: list[dict[str, Any]] = await page.page.evaluate("window.received")
    return received


async def test_an_event_source_receives_a_notification_and_reconnects_after_a_drop(
    watched_page: WatchedPage, settings: Settings, engine: AsyncEngine
) -> None:
    page = watched_page.page
    async with storefront() as origin:
        api_settings = Settings.model_validate(
            settings.model_dump() | {"shop_api_port": free_port(), "cors_allowed_origins": origin}
        )
        async with live_api(api_settings) as api:
            async with httpx.AsyncClient(base_url=api, timeout=30) as http:
                user = await register(http)
                token = (await login(http, email=user["email"]))["accessToken"]
            await page.goto(f"{origin}/")
            await page.evaluate("([api, token]) => follow(api, token)", [api, token])
            await page.wait_for_function("window.opens === 1", timeout=WITHIN_MS, polling=100)
            first = await write(engine, user["id"], "Order confirmed")
            assert await _received(watched_page, 1) == [{"id": first, "title": "Order confirmed"}]
        # The API process is gone (its streams ended with it); one written meanwhile…
        away = await write(engine, user["id"], "Written while the stream was down")
        async with live_api(api_settings):
            # …comes first on the reconnect, made by the browser itself.
            await page.wait_for_function("window.opens === 2", timeout=WITHIN_MS, polling=100)
            received = await _received(watched_page, 2)
            assert [r["id"] for r in received] == [first, away]
            live = await write(engine, user["id"], "Shipped")
            received = await _received(watched_page, 3)
            assert [r["id"] for r in received] == [first, away, live]
    # While the API was down the EventSource kept trying (CONNECTING, 0), never gave up
    # (CLOSED, 2: a refused ticket would have closed it).
    states = await page.evaluate("window.states")
    assert states, "the drop was never noticed"
    assert 2 not in states, states
    # A failed reconnect (the API down) is logged by Chromium as a console error; the page
    # itself raised nothing.
    assert [e for e in watched_page.errors if e.startswith("uncaught")] == []
