"""Races made deterministic: wait until transactions are seen waiting on row locks, the
point a test lets the lock holder go from (no sleeps standing in for an order of events)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def waiting_on_locks(
    engine: AsyncEngine, count: int, *, query_like: str = "%", looks: int = 3000
) -> None:
    """Until ``count`` backends of this database wait on a lock while running a statement
    ``LIKE query_like`` (failing after ``looks`` looks, 10 ms apart, rather than hanging).
    A fresh transaction per look: one transaction sees one snapshot of
    ``pg_stat_activity``."""
    waiting = 0
    for _ in range(looks):
        async with engine.connect() as conn:
            waiting = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE :like"
                    ),
                    {"like": query_like},
                )
            ).scalar_one()
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{waiting} waiting on a lock, not {count}")
