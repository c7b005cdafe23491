"""A parcel whose local step ends while a query is answered, on a dev server of this
module's own (with ``ShipmentWorkflow``'s stand-in activities); how, in
``held_queries``. A ``workflow.patched`` first asked after the step's result answered
False in a replay, and the replay failed: a query of the closed parcel (as the Temporal
UI asks) and a worker taking the parcel up again after its cache dropped it. Since
``shipment-patches-decided-at-start`` no patch is first asked after a local step's
result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from models.fulfillment import ShipmentStatus
from temporal.queues import TaskQueue
from tests.conftest import start_dev_server
from tests.stack import suite_worker
from tests.workflows.held_queries import (
    TASK_TIMEOUT,
    HoldQueries,
    query_while_the_step_ends,
    replay_failures,
    step_ended_a_task,
)
from tests.workflows.shipment_standins import (
    BOOK,
    DELIVERED,
    PRE,
    RECORD,
    TRANSIT,
    ShipmentStandIns,
    parcel,
    update,
)
from workflows.shipments import ShipmentWorkflow
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    SHIPMENT_WORKFLOW,
    shipment_workflow_id,
)
from workflows.types.shipments import ShipmentView


@pytest.fixture(scope="module")
async def parcels() -> AsyncIterator[tuple[WorkflowEnvironment, ShipmentStandIns]]:
    env = await start_dev_server()
    standins = ShipmentStandIns()
    try:
        async with suite_worker(
            env.client,
            task_queue=str(TaskQueue.ORDERS),
            workflows=[ShipmentWorkflow],
            activities=[
                standins.book_label,
                standins.record_update,
                standins.record_updates,
                standins.mark_delayed,
                standins.refund_label,
            ],
            interceptors=[HoldQueries()],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            yield env, standins
    finally:
        await env.shutdown()


async def test_a_parcel_whose_step_ended_during_a_query_replays(
    parcels: tuple[WorkflowEnvironment, ShipmentStandIns],
) -> None:
    env, standins = parcels
    sid = f"shp_{uuid4().hex[:10]}"
    handle = await env.client.start_workflow(
        SHIPMENT_WORKFLOW,
        parcel(sid),
        id=shipment_workflow_id(sid),
        task_queue=str(TaskQueue.ORDERS),
        result_type=ShipmentView,
        task_timeout=TASK_TIMEOUT,
    )
    await standins.called(sid, BOOK)
    gate = standins.gates[sid] = asyncio.Event()
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))

    async def end_step() -> None:
        gate.set()
        await standins.called(sid, RECORD)

    await query_while_the_step_ends(handle, ShipmentView, end_step)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    assert (await handle.result()).status is ShipmentStatus.DELIVERED

    history = await handle.fetch_history()
    assert step_ended_a_task(history), "the step's result was not reported with the query's answer"
    # A query of the closed parcel replays it (a closed run leaves the worker's cache).
    assert (await handle.query("status", result_type=ShipmentView)).status is (
        ShipmentStatus.DELIVERED
    )
    assert await replay_failures([ShipmentWorkflow], history) == []
