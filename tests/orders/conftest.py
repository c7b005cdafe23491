from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from tests.factories import staff_headers
from tests.live import LiveStack, live_stack


@pytest.fixture(scope="module")
async def live(settings: Any, temporal_client: Client) -> AsyncIterator[LiveStack]:
    """The API over real HTTP (the Stripe SDK reaches the sandbox) and real workers."""
    async with live_stack(settings, temporal_client) as running:
        yield running


@pytest.fixture
async def http(live: LiveStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
        yield client
        await client.delete("/_sandbox/stripe/faults")


@pytest.fixture
async def staff(http: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    return await staff_headers(http, engine)
