from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from tests.events.admin.seeding import Seeder
from tests.factories import staff_headers


@pytest.fixture
async def seed(engine: AsyncEngine) -> AsyncIterator[Seeder]:
    """Committed outbox rows and deliveries, deleted (with their deliveries) afterwards."""
    seeder = Seeder(create_session_factory(engine))
    yield seeder
    await seeder.clean()


@pytest.fixture
async def staff(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    return await staff_headers(client, engine)
