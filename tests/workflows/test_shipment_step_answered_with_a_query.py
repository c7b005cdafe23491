"""A parcel whose local step ends while a query is answered, on a dev server of this
module's own (with ``ShipmentWorkflow``'s stand-in activities).

The SDK core reports a local step's result with the query's answer when the result
comes in while the query is answered, and asks for a new workflow task for what the
workflow does with it: the step's marker is in one workflow task, the commands that
followed its result in the next. A replay hands the result back in the marker's task.
A ``workflow.patched`` first asked there answered False (the next task's patch marker
not known yet), and the replay failed on that marker: a query of the closed parcel (as
the Temporal UI asks) and a worker taking the parcel up again after its cache dropped
it. Since ``shipment-patches-decided-at-start`` no patch is first asked after a local
step's result.

The query has to reach the parcel while its step runs, and the step has to end while
the query is answered: a short workflow task timeout (the core reports a task with a
step still running at 80 % of it, and the query comes with the next one), the step
held until the query has begun, and the query held until the step has ended. The
holding is done by an interceptor that blocks the workflow's thread, so that worker
runs workflows unsandboxed, in debug mode (no deadlock detection).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    Replayer,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from models.fulfillment import ShipmentStatus
from temporal.queues import TaskQueue
from temporal.sandbox import workflow_runner
from tests.conftest import start_dev_server
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

LOCAL_MARKER = "core_local_activity"


class HeldQuery:
    """One parcel's next ``status`` query, held in the workflow's thread."""

    def __init__(self) -> None:
        self.begun = threading.Event()
        self.release = threading.Event()


HELD: dict[str, HeldQuery] = {}


class _HoldQueries(WorkflowInboundInterceptor):
    def handle_query(self, input: HandleQueryInput) -> Any:
        held = HELD.pop(workflow.info().workflow_id, None)
        if held is not None and input.query == "status":
            held.begun.set()
            held.release.wait(10)
        return super().handle_query(input)


class HoldQueries(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _HoldQueries


@pytest.fixture(scope="module")
async def parcels() -> AsyncIterator[tuple[WorkflowEnvironment, ShipmentStandIns]]:
    env = await start_dev_server()
    standins = ShipmentStandIns()
    try:
        async with Worker(
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
            debug_mode=True,
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
        # Reported at 80 % with the step running (3.2 s), the query's task lasting less.
        task_timeout=timedelta(seconds=4),
    )
    await standins.called(sid, BOOK)
    gate = standins.gates[sid] = asyncio.Event()
    held = HELD[handle.id] = HeldQuery()
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    query = asyncio.create_task(handle.query("status", result_type=ShipmentView))
    try:
        assert await asyncio.to_thread(held.begun.wait, 20), "the query never reached it"
        gate.set()
        await standins.called(sid, RECORD)
        # The step's result reaches the core while the query is still answered.
        await asyncio.sleep(1.5)
    finally:
        held.release.set()
    await query
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    assert (await handle.result()).status is ShipmentStatus.DELIVERED

    history = await handle.fetch_history()
    events = list(history.events)
    # The race happened: the step's marker ended its workflow task.
    split = [
        i
        for i, e in enumerate(events[:-1])
        if e.marker_recorded_event_attributes.marker_name == LOCAL_MARKER
        and events[i + 1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    ]
    assert split, "the step's result was not reported with the query's answer"
    # A query of the closed parcel replays it (a closed run leaves the worker's cache).
    assert (await handle.query("status", result_type=ShipmentView)).status is (
        ShipmentStatus.DELIVERED
    )
    for runner in [SandboxedWorkflowRunner(), workflow_runner()]:
        replayer = Replayer(
            workflows=[ShipmentWorkflow],
            data_converter=pydantic_data_converter,
            workflow_runner=runner,
        )
        replayed = await replayer.replay_workflow(
            WorkflowHistory.from_json(handle.id, history.to_json()),
            raise_on_replay_failure=False,
        )
        assert replayed.replay_failure is None
