"""The plans of the statements a piece of code sends: whether an index serves them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession


async def statement_plans(session: AsyncSession, run: Callable[[], Awaitable[object]]) -> list[str]:
    """The plans of the statements ``run`` sends, with sequential scans and bitmap scans
    off: whether an index can serve each (the test table is too small for the planner to
    choose one on its own)."""
    connection = await session.connection()
    engine = connection.engine
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        sent.append((args[2], args[3]))

    for setting in ("enable_seqscan", "enable_bitmapscan"):
        await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await run()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    plans = []
    for statement, parameters in sent:
        result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        plans.append("\n".join(row[0] for row in result.all()))
    return plans
