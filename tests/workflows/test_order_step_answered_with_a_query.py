"""Orders whose local step ends while a query is answered, on a dev server of this
module's own (with ``OrderWorkflow``'s stand-in activities); how, in ``held_queries``.

``free-orders-uncharged`` was first asked after the stock step's result and
``undo-finishes-when-cancelled`` when a local step failed: a replay asked them before it
knew of their markers, answered False and failed ("Non-deprecated patch marker
encountered"), on a query of the closed order (the Temporal UI's) or on a worker taking
the order up after its cache dropped it. Since ``order-patches-decided-at-start``
neither is asked after a local step's result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from models.orders import OrderStatus
from tests.conftest import start_dev_server
from tests.workflows.held_queries import (
    TASK_TIMEOUT,
    HoldQueries,
    query_while_the_step_ends,
    replay_failures,
    step_ended_a_task,
)
from tests.workflows.order_standins import (
    CAPTURE,
    RELEASE,
    RESERVE,
    VALIDATE,
    Block,
    OrderStandIns,
    Script,
    Succeed,
    free_snapshot,
    start_order,
)
from workflows.orders import OrderWorkflow
from workflows.types.orders import OrderView


@dataclass
class BlockThenOutOfStock(Block):
    """Held as a ``Block``; once released, the stock step's business failure."""

    async def wait(self) -> None:
        await super().wait()
        raise ApplicationError("not enough stock", type="out_of_stock", non_retryable=True)


@pytest.fixture(scope="module")
async def orders() -> AsyncIterator[tuple[WorkflowEnvironment, OrderStandIns]]:
    env = await start_dev_server()
    standins = OrderStandIns()
    try:
        async with standins.running(env.client, interceptors=[HoldQueries()]):
            yield env, standins
    finally:
        standins.release_all()
        await env.shutdown()


async def _answered_while_stock_step_ends(
    env: WorkflowEnvironment, script: Script, held: Block, status: OrderStatus
) -> None:
    """The order's stock step ends while a query is answered; the order ends at
    ``status``, and its history replays (a query of the closed order, both runners)."""
    handle = await start_order(env.client, script.order_id, task_timeout=TASK_TIMEOUT)
    await script.called(RESERVE)

    async def end_step() -> None:
        held.release()
        await held.ended.wait()

    await query_while_the_step_ends(handle, OrderView, end_step)
    assert (await handle.result()).status is status

    history = await handle.fetch_history()
    assert step_ended_a_task(history), "the step's result was not reported with the query's answer"
    # A closed run leaves the worker's cache: this query replays it.
    assert (await handle.query(OrderWorkflow.status)).status is status
    assert await replay_failures([OrderWorkflow], history) == []


async def test_a_free_order_whose_stock_step_ended_during_a_query_replays(
    orders: tuple[WorkflowEnvironment, OrderStandIns],
) -> None:
    env, standins = orders
    held = Block()
    script = standins.order({RESERVE: [held]})
    script.plan[VALIDATE] = [Succeed(free_snapshot(script.order_id))]
    await _answered_while_stock_step_ends(env, script, held, OrderStatus.FULFILLMENT_QUEUED)
    assert CAPTURE not in script.ran  # free: nothing charged


async def test_an_order_whose_failed_step_ended_during_a_query_replays(
    orders: tuple[WorkflowEnvironment, OrderStandIns],
) -> None:
    env, standins = orders
    held = BlockThenOutOfStock()
    script = standins.order({RESERVE: [held], RELEASE: [Succeed(0)]})
    await _answered_while_stock_step_ends(env, script, held, OrderStatus.FAILED)
    assert RELEASE in script.ran
