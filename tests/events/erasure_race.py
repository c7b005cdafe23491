"""An account erased while something for the person is on its way, made deterministic:
the work is held at a point of its own (after it read the account, before its effect),
the erasure runs, the work is let go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import SessionFactory, transaction
from services.analytics import AnalyticsRecorder
from services.users import UserService
from tests.lock_waits import waiting_on_locks

T = TypeVar("T")


class Hold:
    """Where the held work stops (``point``) until the test releases it."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def point(self) -> None:
        self.reached.set()
        await self.release.wait()


async def delete_account(sessions: SessionFactory, user_id: str) -> None:
    """``DELETE /api/users/{id}``'s erasure, committed: acknowledged when it returns."""
    async with transaction(sessions) as session:
        service = UserService(session, analytics=AnalyticsRecorder(False), password_min_length=15)
        await service.delete(await service.get(user_id))


async def erase_while_held(
    engine: AsyncEngine,
    hold: Hold,
    work: Callable[[], Awaitable[object]],
    erase: Callable[[], Awaitable[T]],
) -> T:
    """Run ``work`` until it reaches ``hold``, then ``erase`` (committing the deletion);
    let the work go once the erasure is seen waiting for it, or has been acknowledged.
    What ``erase`` answered, once both are done."""
    working = asyncio.ensure_future(work())
    await hold.reached.wait()
    erasing = asyncio.ensure_future(erase())
    # Either the erasure is seen waiting for the work, or it has already been acknowledged.
    waiting = asyncio.create_task(
        waiting_on_locks(engine, 1, query_like="%FROM users%FOR NO KEY UPDATE%")
    )
    await asyncio.wait({erasing, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done():
        waiting.result()  # seen waiting, not given up on
    hold.release.set()
    await working
    acknowledged = await erasing
    waiting.cancel()
    return acknowledged
