from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import staff_headers


@pytest.fixture
async def staff(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    """Auth headers of a freshly made staff member."""
    return await staff_headers(client, engine)
