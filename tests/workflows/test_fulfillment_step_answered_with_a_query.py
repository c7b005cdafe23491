"""Fulfilments whose opening (a local step) ends while a query is answered, with a
staff Update waiting for its turn; on a dev server of this module's own (with
``FulfillmentWorkflow``'s stand-ins); how, in ``held_queries``.

``parcel-id-from-update`` (``create_shipment``) and ``cancel-until-answered``
(``cancel``) were asked when the Update's turn came, here when the opening ended: a
replay asked them before it knew of their markers, answered False and failed
("Non-deprecated patch marker encountered"), on a query of the closed fulfilment (the
Temporal UI's) or on a worker taking it up after its cache dropped it. Since
``fulfillment-patches-decided-at-start`` neither is asked after a local step's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from models.fulfillment import FulfillmentStatus
from tests.conftest import start_dev_server
from tests.workflows.fulfillment_standins import (
    MUGS,
    OPEN,
    FulfillmentStandIns,
    start_fulfilment,
)
from tests.workflows.held_queries import (
    TASK_TIMEOUT,
    HoldQueries,
    query_while_the_step_ends,
    replay_failures,
    step_ended_a_task,
)
from tests.workflows.order_standins import Block
from workflows.fulfillment import FulfillmentWorkflow
from workflows.types.fulfillment_orders import (
    CancelFulfillmentRequest,
    FulfillmentView,
    LineQuantity,
    ShipmentRequest,
)


@pytest.fixture(scope="module")
async def fulfilments() -> AsyncIterator[tuple[WorkflowEnvironment, FulfillmentStandIns]]:
    env = await start_dev_server()
    standins = FulfillmentStandIns()
    try:
        async with standins.running(env.client, interceptors=[HoldQueries()]):
            yield env, standins
    finally:
        for fulfilment in standins.fulfilments.values():
            for held in fulfilment.held.values():
                held.release()
        await env.shutdown()


async def _opened_during_a_query(
    env: WorkflowEnvironment, standins: FulfillmentStandIns
) -> tuple[WorkflowHandle[FulfillmentWorkflow, FulfillmentView], Block]:
    """A fulfilment whose opening is held (until the caller's query has begun)."""
    fulfilment = standins.fulfilment()
    opening = fulfilment.held[OPEN] = Block()
    handle = await start_fulfilment(env.client, fulfilment.order_id, task_timeout=TASK_TIMEOUT)
    await asyncio.wait_for(opening.started.wait(), 10)
    return handle, opening


async def _query_while_it_opens(handle: WorkflowHandle[Any, Any], opening: Block) -> None:
    async def end_step() -> None:
        opening.release()
        await opening.ended.wait()

    await query_while_the_step_ends(handle, FulfillmentView, end_step)


async def _replays(handle: WorkflowHandle[FulfillmentWorkflow, FulfillmentView]) -> None:
    assert (await handle.result()).status is FulfillmentStatus.CANCELLED
    history = await handle.fetch_history()
    assert step_ended_a_task(history), "the step's result was not reported with the query's answer"
    # A closed run leaves the worker's cache: this query replays it.
    view = await handle.query(FulfillmentWorkflow.status)
    assert view.status is FulfillmentStatus.CANCELLED
    assert await replay_failures([FulfillmentWorkflow], history) == []


async def test_a_parcel_created_when_the_opening_ended_during_a_query_replays(
    fulfilments: tuple[WorkflowEnvironment, FulfillmentStandIns],
) -> None:
    env, standins = fulfilments
    handle, opening = await _opened_during_a_query(env, standins)
    create = await handle.start_update(
        FulfillmentWorkflow.create_shipment,
        ShipmentRequest(lines=[LineQuantity(order_line_id=MUGS, quantity=2)]),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await _query_while_it_opens(handle, opening)
    created = await create.result()
    view = await handle.execute_update(FulfillmentWorkflow.cancel, CancelFulfillmentRequest())
    assert [s.shipment_id for s in view.shipments] == [created.shipment_id]
    await _replays(handle)


async def test_a_cancel_whose_turn_came_when_the_opening_ended_during_a_query_replays(
    fulfilments: tuple[WorkflowEnvironment, FulfillmentStandIns],
) -> None:
    env, standins = fulfilments
    handle, opening = await _opened_during_a_query(env, standins)
    cancel = await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await _query_while_it_opens(handle, opening)
    assert (await cancel.result()).status is FulfillmentStatus.CANCELLED
    await _replays(handle)
