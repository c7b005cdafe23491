from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import staff_headers
from tests.live import LiveStack


@pytest.fixture
async def http(live: LiveStack) -> AsyncIterator[httpx.AsyncClient]:
    """The live API over HTTP (its Stripe sandbox faults cleared after each test)."""
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
        yield client
        await client.delete("/_sandbox/stripe/faults")


@pytest.fixture
async def staff(http: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    return await staff_headers(http, engine)
