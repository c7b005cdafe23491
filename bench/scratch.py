"""A scratch database on the stack's PostgreSQL for benchmarks that load data of their own
(search at 100k products, analytics at 10 million events), dropped afterwards."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from core.settings import Settings


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` (the query, e.g. a socket ``host=``, kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def scratch_database(settings: Settings, **overrides: object) -> AsyncIterator[Settings]:
    """Settings for a fresh, migrated database named ``shop_bench_…`` on the stack's server
    (Redis database 15, a free API port, ``overrides``), dropped on the way out."""
    from cli.stack.process import free_port
    from core.db import require_database_url
    from migrations.runner import upgrade

    base_url = require_database_url(settings)
    name = f"shop_bench_{uuid4().hex[:8]}"
    admin_dsn = asyncpg_dsn(with_database(base_url, "postgres"))
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    scratch_url = with_database(base_url, name)
    redis_url = (settings.redis_url or "").rsplit("/", 1)[0] + "/15"
    scratch = Settings.model_validate(
        settings.model_dump()
        | {
            "database_url": scratch_url,
            "redis_url": redis_url,
            "shop_api_port": free_port(),
            "analytics_enabled": False,
        }
        | overrides
    )
    try:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        await asyncio.to_thread(upgrade, scratch_url)
        yield scratch
    finally:
        with suppress(Exception):
            conn = await asyncpg.connect(admin_dsn)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()
