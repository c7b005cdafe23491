"""A customer's cancel that meets the order while ``OrderWorkflow`` hands it to the
warehouse, on the live stack, the hand-over held still by the test: the service
(``OrderCancellation``) driven with the order as the request read it, before the
hand-over committed (each state in between, over HTTP: ``tests/api/
test_order_cancel_handover.py``).

The queue step is the one step of an order that reads the lifetime value ledger (the
order's priority), and the confirmation email the one write of ``email_messages`` on
its way: the test holds those tables locked, so each waits, until the test lets it go
(no sleeps standing in for an order of events).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowExecutionStatus

from core.db import create_session_factory
from models.orders import OrderStatus
from services.order_cancellation import OrderCancellation
from services.order_repository import OrderRepository
from temporal.clients import TemporalConnection, WorkflowClients
from temporal.clients.orders import workflow_id
from tests.fulfillment.helpers import fulfilment_of
from tests.live import LiveStack
from tests.lock_waits import waiting_on_locks
from tests.orders.helpers import (
    eventually,
    place,
    product,
    shopper_with_cart,
    wait_for,
)

# The queue step's read of the customer's other orders (``value_before``); the relay's
# subscribers read the ledger by order first (``order_entries``), another statement.
QUEUE_STEP_READ = "%FROM lifetime_value_entries%WHERE lifetime_value_entries.user_id%"


@asynccontextmanager
async def locked_table(engine: AsyncEngine, table: str) -> AsyncIterator[None]:
    """``table`` locked against every reader and writer until the block ends."""
    async with engine.connect() as conn:
        await conn.begin()
        await conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await conn.rollback()


async def test_a_cancel_that_read_the_order_before_the_hand_over_goes_to_the_fulfilment(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, live: LiveStack
) -> None:
    """The request read the order ``confirmed``; by the time it asks, the queue step has
    committed and the fulfilment started, while ``OrderWorkflow`` still runs (its
    confirmation email held): the workflow refuses, and the cancel, reading the order
    again, goes to the fulfilment, which cancels it. Before, the refusal was the answer
    (409), with the order cancellable all along."""
    item = await product(http, staff, stock=3)
    shopper = await shopper_with_cart(http, [(item, 1)])
    sessions = create_session_factory(engine)
    async with sessions() as request:
        async with locked_table(engine, "email_messages"):
            async with locked_table(engine, "lifetime_value_entries"):
                placed = await place(http, shopper)
                await waiting_on_locks(engine, 1, query_like=QUEUE_STEP_READ)
                # The request's read of the order, before the hand-over commits.
                seen = await OrderRepository(request).require(placed["id"])
                assert seen.status == OrderStatus.CONFIRMED
            await fulfilment_of(engine, placed["id"])
            order_workflow = live.client.get_workflow_handle(workflow_id(placed["id"]))
            assert (await order_workflow.describe()).status == WorkflowExecutionStatus.RUNNING
            cancellation = OrderCancellation(
                OrderRepository(request),
                WorkflowClients(TemporalConnection.of(live.client), sessions),
            )
            cancelling = asyncio.ensure_future(cancellation.cancel(seen, "ordered twice"))

            async def closed() -> bool:
                async with sessions() as session:
                    status = await OrderRepository(session).status_of(placed["id"])
                return status is OrderStatus.CANCELLED

            # The fulfilment's undo has closed the order; its email waits for the lock.
            await eventually(closed)
        answer = await cancelling
        assert (answer.order.status, answer.underway) == (OrderStatus.CANCELLED, False)
    order = await wait_for(http, shopper.headers, placed["id"], {"cancelled"})
    assert order["payment"]["status"] == "refunded"
