"""A scratch database on the stack's PostgreSQL for benchmarks that load data of their own
(search at 100k products, analytics at 10 million events), dropped afterwards, or kept
under a name of the caller's to be loaded once and reused (``keep``)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

from core.settings import Settings


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` (the query, e.g. a socket ``host=``, kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_name(settings: Settings) -> str:
    """The database ``settings`` name (not its URL, which may hold a password)."""
    return urlsplit(settings.resolved_database_url or "").path.lstrip("/")


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


KEPT_NAME = re.compile(r"^shop_bench_[a-z0-9_]{1,40}$")


class ScratchNameInvalid(ValueError):
    pass


def kept_name(name: str) -> str:
    """A kept database's name: ``shop_bench_`` and a few lower-case letters, digits or
    ``_``, so that it can never name the stack's own database (or another's)."""
    full = name if name.startswith("shop_bench_") else f"shop_bench_{name}"
    if not KEPT_NAME.match(full):
        raise ScratchNameInvalid(
            f"--keep-database takes lower-case letters, digits and _ (got {name!r})"
        )
    return full


@asynccontextmanager
async def scratch_database(
    settings: Settings, *, keep: str | None = None, **overrides: object
) -> AsyncIterator[Settings]:
    """Settings for a migrated database on the stack's server (Redis database 15, a free
    API port, ``overrides``): a fresh ``shop_bench_…`` dropped on the way out, or, with
    ``keep``, the database ``shop_bench_<keep>``, created when missing, migrated to head
    and left in place for the next run."""
    from cli.stack.postgres import ensure_database
    from cli.stack.process import free_port
    from core.db import require_database_url
    from migrations.runner import upgrade

    base_url = require_database_url(settings)
    name = kept_name(keep) if keep else f"shop_bench_{uuid4().hex[:8]}"
    admin_dsn = asyncpg_dsn(with_database(base_url, "postgres"))
    conn = await asyncpg.connect(admin_dsn)
    try:
        await ensure_database(conn, name)
    finally:
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
        # Quiet while the scratch database is migrated, and as it was afterwards: a level
        # left behind silenced the migration lines of whatever ran next in this process
        # (`shop dev`'s migrations log, or a test of it).
        alembic = logging.getLogger("alembic")
        level = alembic.level
        alembic.setLevel(logging.WARNING)
        try:
            await asyncio.to_thread(upgrade, scratch_url)
        finally:
            alembic.setLevel(level)
        yield scratch
    finally:
        if not keep:
            with suppress(Exception):
                conn = await asyncpg.connect(admin_dsn)
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.close()
