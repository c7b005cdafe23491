"""A scratch database per migration test: up/down migrations disturb no other test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
import pytest

from tests.stack import StackServers


def plain_url(url: str, database: str) -> str:
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    return urlunsplit(parts._replace(path=f"/{database}"))


def asyncpg_url(url: str) -> str:
    """``url`` (SQLAlchemy's, ``postgresql+asyncpg://``) as asyncpg takes it."""
    return plain_url(url, urlsplit(url).path[1:])


@pytest.fixture
def scratch_database(servers: StackServers) -> Iterator[str]:
    """An empty database of its own, so up/down migrations disturb no other test."""
    name = f"shop_mig_{uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(plain_url(servers.database_url, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(servers.database_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
