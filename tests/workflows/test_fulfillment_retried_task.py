"""``FulfillmentWorkflow`` when a workflow task is tried again after its local step took
effect: the worker died after ``fulfillment.create_shipment`` committed and before the
task's completion recorded it (here: the task fails once, right after that step, as a
dead worker's would time out). The next attempt runs the Update's handler again, from
the start, and its step again: it must name the same parcel, or a second one is made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    Interceptor,
    StartChildWorkflowInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from models.fulfillment import FulfillmentStatus, ShipmentStatus
from tests.workflows.fulfillment_standins import (
    CREATE,
    MUGS,
    FulfillmentStandIns,
    start_fulfilment,
)
from workflows.fulfillment import FulfillmentWorkflow
from workflows.types.fulfillment_orders import LineQuantity, ShipmentRequest


class _DiesAfterTheStep(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, died: set[str]) -> None:
        super().__init__(next)
        self._died = died

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        parent = workflow.info().workflow_id
        if parent not in self._died:
            self._died.add(parent)
            # Not a Temporal failure: the workflow task fails and is tried again, its
            # local step's marker never recorded, as when the worker dies here.
            raise RuntimeError("the worker died after the parcel's step")
        return await super().start_child_workflow(input)


class WorkerDiesOnce(Interceptor):
    """The first parcel start of each fulfilment fails its workflow task."""

    def __init__(self) -> None:
        self.died: set[str] = set()

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        died = self.died

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(_DiesAfterTheStep(outbound, died))

        return Inbound


@pytest.fixture(scope="module")
async def fulfilments(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[FulfillmentStandIns]:
    interceptor = WorkerDiesOnce()
    async with FulfillmentStandIns().running(time_skipping_env.client, [interceptor]) as running:
        yield running


async def test_a_parcel_step_run_again_by_a_retried_task_names_the_same_parcel(
    time_skipping_env: WorkflowEnvironment, fulfilments: FulfillmentStandIns
) -> None:
    script = fulfilments.fulfilment()
    handle = await start_fulfilment(time_skipping_env.client, script.order_id)
    created = await handle.execute_update(
        FulfillmentWorkflow.create_shipment,
        ShipmentRequest(lines=[LineQuantity(order_line_id=MUGS, quantity=2)]),
    )
    assert created.status is ShipmentStatus.PENDING
    # The step ran twice (the first attempt's answer lost with its task): one parcel.
    assert script.ran.count(CREATE) == 2, script.ran
    assert script.shipments == [created.shipment_id, created.shipment_id]
    view = await handle.query(FulfillmentWorkflow.status)
    assert view.status is FulfillmentStatus.IN_PROGRESS
    assert [s.shipment_id for s in view.shipments] == [created.shipment_id]
    await handle.terminate("test over")
