"""The API served over real HTTP and workers polling real task queues, in the test loop.

Needed where a provider SDK (SendGrid, Stripe) must reach our sandboxes over HTTP, and
where workflows must actually run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from temporalio.client import Client

from cli.serve import serve_api
from cli.stack.process import free_port
from core.redis import create_redis
from core.settings import Settings
from services.events.subscribers import Subscriber
from services.throttle import LoginThrottle
from temporal.queues import ALL_QUEUES
from workers.main import running_workers, worker_deps


@dataclass(frozen=True)
class LiveStack:
    settings: Settings
    base_url: str
    client: Client


async def unlock_local_sign_ins(settings: Settings) -> None:
    """Every client of a live API comes from 127.0.0.1: the failed sign-ins an earlier test
    file made there (the contract run fuzzes the login) must not lock this file's out.
    Which file ran before depends on how the parallel workers shared them."""
    redis = create_redis(settings)
    try:
        await LoginThrottle.from_settings(redis, settings).unlock(ip="127.0.0.1")
    finally:
        await redis.aclose()


@asynccontextmanager
async def live_api(settings: Settings) -> AsyncIterator[str]:
    await unlock_local_sign_ins(settings)
    async with serve_api(settings) as base_url:
        yield base_url


@asynccontextmanager
async def live_workers(
    settings: Settings, client: Client, *, subscribers: Sequence[Subscriber] | None = None
) -> AsyncIterator[None]:
    """Workers on every queue (and the outbox relay, delivering to ``subscribers``, by
    default every subscriber in the code)."""
    async with (
        worker_deps(settings, client) as deps,
        running_workers(client, deps, ALL_QUEUES, subscribers=subscribers),
    ):
        yield


@asynccontextmanager
async def live_stack(settings: Settings, client: Client) -> AsyncIterator[LiveStack]:
    port = free_port()
    live = settings.model_copy(update={"shop_api_port": port})
    async with live_api(live) as base_url, live_workers(live, client):
        yield LiveStack(settings=live, base_url=base_url, client=client)


async def send_cut_short(base_url: str, path: str, headers: dict[str, str], body: bytes) -> None:
    """A POST whose client goes away halfway through its body (a process killed while
    sending): the headers announce the whole body, half of it is sent, the connection
    closes. Returns once the server has had time to act on what it got."""
    url = httpx.URL(base_url)
    _, writer = await asyncio.open_connection(url.host, url.port)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    start = f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\n{head}"
    writer.write(f"{start}Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    # What the server would do with the half, it does in milliseconds (no test waits for
    # a thing that must not happen; this only lets the old behaviour show).
    await asyncio.sleep(0.5)
