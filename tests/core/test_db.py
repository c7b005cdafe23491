"""The engine's pool: a connection the server closed is replaced at checkout; an
autocommit session's writes stand on their own, and its connection goes back to the pool
transactional."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import (
    autocommit,
    create_engine,
    create_read_session_factory,
    create_session_factory,
)
from core.settings import Settings


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    settings: Settings, engine: AsyncEngine
) -> None:
    pooled = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    try:
        first = await _backend(pooled)
        assert await _backend(pooled) == first  # the pool hands the same one out again
        async with engine.connect() as admin:
            # Waits (up to 5 s) until the backend has exited, so its goodbye was sent.
            ended = await admin.scalar(text(f"SELECT pg_terminate_backend({first}, 5000)"))
        assert ended is True
        await asyncio.sleep(0.2)  # this loop reads the closed socket of the idle connection
        # Without the check at checkout, this is "connection was closed" (a 500).
        assert await _backend(pooled) != first
        # Autocommit reads go through the same pool and the same check.
        async with create_read_session_factory(pooled)() as session:
            assert (await session.exec(text("SELECT 1"))).one() == (1,)  # type: ignore[call-overload]
    finally:
        await pooled.dispose()


async def test_the_pool_keeps_the_connections_a_busy_api_process_has_in_flight(
    settings: Settings,
) -> None:
    """16 reads at once (32 clients over two API processes), then 16 again: the second
    round opens no connection. With the pool smaller than that, overflow connections
    were closed when given back and opened again by the next requests."""
    size = Settings.model_fields["db_pool_size"].default
    assert size >= 16
    pooled = create_engine(settings.model_copy(update={"db_pool_size": size}))
    opened: list[object] = []
    event.listen(pooled.sync_engine, "connect", lambda conn, record: opened.append(conn))

    async def read() -> None:
        async with pooled.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.05)"))

    try:
        await asyncio.gather(*(read() for _ in range(16)))
        assert len(opened) == 16
        await asyncio.gather(*(read() for _ in range(16)))
        assert len(opened) == 16
    finally:
        await pooled.dispose()


async def test_an_autocommit_session_writes_without_a_transaction_and_the_pool_forgets_it(
    settings: Settings,
) -> None:
    pooled = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    sessions = create_session_factory(pooled)

    async def numbers() -> list[int]:
        async with sessions() as session:
            found = await session.exec(text("SELECT n FROM autocommit_probe ORDER BY n"))  # type: ignore[call-overload]
            return [n for (n,) in found.all()]

    try:
        async with autocommit(sessions) as session:
            # One connection in the pool: the temporary table is there for every session.
            await session.exec(text("CREATE TEMP TABLE autocommit_probe (n int)"))  # type: ignore[call-overload]
            await session.exec(text("INSERT INTO autocommit_probe VALUES (1)"))  # type: ignore[call-overload]
            # the session closes without a commit: the insert stands all the same
        assert await numbers() == [1]
        async with sessions() as session:
            await session.exec(text("INSERT INTO autocommit_probe VALUES (2)"))  # type: ignore[call-overload]
            # closed without a commit: an ordinary session's write is rolled back
        assert await numbers() == [1]
    finally:
        await pooled.dispose()
