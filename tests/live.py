"""The API served over real HTTP and workers polling real task queues, in the test loop.

Needed where a provider SDK (SendGrid, Stripe) must reach our sandboxes over HTTP, and
where workflows must actually run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import uvicorn
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import create_app
from cli.stack.process import free_port
from core.db import create_engine, create_session_factory
from core.redis import create_redis
from core.settings import Settings
from integrations.email.factory import build_sender
from temporal.queues import ALL_QUEUES
from workers.registry import WorkerDeps, components_for


@dataclass(frozen=True)
class LiveStack:
    settings: Settings
    base_url: str
    client: Client


@asynccontextmanager
async def live_api(settings: Settings) -> AsyncIterator[str]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.shop_api_port, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield settings.api_base_url
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def live_workers(settings: Settings, client: Client) -> AsyncIterator[None]:
    engine = create_engine(settings)
    redis = create_redis(settings)
    deps = WorkerDeps(
        settings=settings,
        client=client,
        engine=engine,
        sessions=create_session_factory(engine),
        redis=redis,
        email_sender=build_sender(settings),
    )
    try:
        async with AsyncExitStack() as stack:
            for queue in ALL_QUEUES:
                parts = components_for(queue, deps)
                await stack.enter_async_context(
                    Worker(
                        client,
                        task_queue=str(queue),
                        workflows=parts.workflows,
                        activities=parts.activities,
                    )
                )
            yield
    finally:
        await redis.aclose()
        await engine.dispose()


@asynccontextmanager
async def live_stack(settings: Settings, client: Client) -> AsyncIterator[LiveStack]:
    port = free_port()
    live = settings.model_copy(update={"shop_api_port": port})
    async with live_api(live) as base_url, live_workers(live, client):
        yield LiveStack(settings=live, base_url=base_url, client=client)
