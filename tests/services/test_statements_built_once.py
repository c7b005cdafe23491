"""The order's, its payment's and the held account's reads, run many times an order by
its steps and event handlers, are statements built once (issue #15): a statement built
per call cost its construction and its cache key each time, more of the worker's CPU
than running it. Each read runs the same statement object every call, with its own
values bound (what it returns is the rest of the suite's to check)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.order_repository import OrderRepository
from services.payments.repository import PaymentRepository
from services.users import UserRepository
from tests.events.customers import create_customer, create_order


@contextmanager
def executed(engine: AsyncEngine) -> Iterator[list[Any]]:
    """The statement objects run on ``engine`` inside the block."""
    statements: list[Any] = []

    def record(_conn: Any, clause: Any, *_: Any) -> None:
        statements.append(clause)

    event.listen(engine.sync_engine, "before_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_execute", record)


async def test_an_orders_reads_run_statements_built_once(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    first = await create_customer(db_session)
    second = await create_customer(db_session)
    orders = [await create_order(db_session, user, total=1000) for user in (first, second)]
    await db_session.flush()
    repository = OrderRepository(db_session)
    payments = PaymentRepository(db_session)
    users = UserRepository(db_session)
    reads: list[Callable[[int], Awaitable[object]]] = [
        lambda i: repository.get(orders[i].id),
        lambda i: repository.get(orders[i].id, lock=True),
        lambda i: repository.undoing_since(orders[i].id),
        lambda i: payments.for_order(orders[i].id),
        lambda i: payments.for_order(orders[i].id, lock=True),
        lambda i: users.hold(orders[i].user_id or ""),
    ]
    for read in reads:
        with executed(engine) as runs:
            await read(0)
            await read(1)
        assert len(runs) == 2, runs
        assert runs[0] is runs[1], runs
    assert await repository.get(orders[1].id) is orders[1]
    assert await users.hold(second.id) is second
