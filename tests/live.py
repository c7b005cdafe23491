"""The API served over real HTTP and workers polling real task queues, in the test loop.

Needed where a provider SDK (SendGrid, Stripe) must reach our sandboxes over HTTP, and
where workflows must actually run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from temporalio.client import Client

from cli.serve import serve_api
from cli.stack.process import free_port
from core.settings import Settings
from services.events.subscribers import Subscriber
from temporal.queues import ALL_QUEUES
from workers.main import running_workers, worker_deps


@dataclass(frozen=True)
class LiveStack:
    settings: Settings
    base_url: str
    client: Client


@asynccontextmanager
async def live_api(settings: Settings) -> AsyncIterator[str]:
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
