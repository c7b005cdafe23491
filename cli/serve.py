"""Serving the API inside an existing event loop (tests and benchmarks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from cli.stack.process import die_with_parent
from core.logging import configure_logging
from core.settings import Settings, load_settings

# The request line and headers uvicorn reads before answering 400 itself. Its 16 KiB
# default is less than a search of the 10,000 characters the API accepts (up to 12 bytes
# each once percent-encoded), which then got a bare 400 that is not ours.
MAX_REQUEST_HEAD_BYTES = 256 * 1024


@asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[str]:
    """The API on 127.0.0.1:``SHOP_API_PORT`` until the block exits; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=settings.shop_api_port,
        log_config=None,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
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


def api_worker_app() -> FastAPI:
    """One of ``shop api --workers N``'s processes: dies with its supervisor."""
    die_with_parent()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
