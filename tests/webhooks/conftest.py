from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from services.webhooks.repository import WebhookEndpointRepository
from tests.factories import staff_headers


@pytest.fixture
async def staff(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    return await staff_headers(client, engine)


@pytest.fixture
async def made(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Ids of the endpoints a test made (it appends them), deleted afterwards."""
    ids: list[str] = []
    yield ids
    async with transaction(create_session_factory(engine)) as session:
        endpoints = WebhookEndpointRepository(session)
        for endpoint_id in ids:
            row = await endpoints.get(endpoint_id)
            if row is not None:
                await endpoints.delete(row)
