"""An operator resets a ``FulfillmentWorkflow`` (``temporal workflow reset``, the UI's
Reset): the scenarios ``test_fulfillment_reset.py`` asserts and
``record_reset_histories.py`` records, on a dev server (the time-skipping server cannot
reset a workflow) with the fulfilment's stand-ins (``fulfillment_standins.py``).

A reset run keeps its history up to the reset point, does again what came after it, and
is sent again the signals and (unless excluded) the Updates that came since. Each
scenario returns the workflow's id once the reset run has ended, delivered.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyExcludeType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle

from models.fulfillment import FulfillmentStatus, ShipmentStatus
from tests.workflows.fulfillment_standins import (
    HOLD,
    MUGS,
    OPEN,
    TEA,
    FulfillmentStandIns,
    Fulfilment,
    carrier,
    eventually,
    start_fulfilment,
)
from workflows.fulfillment import FulfillmentWorkflow
from workflows.fulfillment_patches import RESET_READS_THE_DATABASE
from workflows.types.fulfillment import shipment_workflow_id
from workflows.types.fulfillment_orders import FulfillmentView, LineQuantity, ShipmentRequest

Handle = WorkflowHandle[FulfillmentWorkflow, FulfillmentView]


def parcel(*lines: tuple[str, int]) -> ShipmentRequest:
    return ShipmentRequest(lines=[LineQuantity(order_line_id=ln, quantity=q) for ln, q in lines])


async def reset(
    client: Client, workflow_id: str, event_id: int, *exclude: ResetReapplyExcludeType.ValueType
) -> None:
    """As ``temporal workflow reset --event-id`` does: the run goes back to the workflow
    task that completed at ``event_id`` (that task is done again); what came after is
    sent again, but for the ``exclude``d kinds (``--reapply-exclude``)."""
    await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            reason="repair",
            workflow_task_finish_event_id=event_id,
            request_id=str(uuid4()),
            reset_reapply_exclude_types=list(exclude),
        )
    )


def latest(client: Client, workflow_id: str) -> Handle:
    """The workflow's current run (the reset run, once it is reset)."""
    return client.get_workflow_handle_for(FulfillmentWorkflow.run, workflow_id)


async def until(client: Client, workflow_id: str, ok: Any) -> FulfillmentView:
    seen: list[FulfillmentView] = []

    async def check() -> bool:
        seen[:] = [await latest(client, workflow_id).query(FulfillmentWorkflow.status)]
        return bool(ok(seen[0]))

    try:
        await eventually(check, seconds=15)
    except AssertionError as err:
        raise AssertionError(f"never; last {seen}") from err
    return seen[0]


async def moved(
    client: Client, script: Fulfilment, shipment_id: str, status: ShipmentStatus
) -> None:
    """The carrier moves a parcel: its rows say so (as its real steps record) and its
    workflow tells the fulfilment."""
    script.stored[shipment_id].status = status
    await carrier(client, shipment_id, status)


async def started(client: Client, standins: FulfillmentStandIns) -> tuple[Fulfilment, str]:
    """A fulfilment, open (its first workflow task done) before staff act on it."""
    script = standins.fulfilment()
    handle = await start_fulfilment(client, script.order_id)
    await until(client, handle.id, lambda v: v.status is FulfillmentStatus.OPEN)
    return script, handle.id


async def patches(client: Client, workflow_id: str) -> list[str]:
    return [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data.decode()
        async for e in client.get_workflow_handle(workflow_id).fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and "patch-data" in e.marker_recorded_event_attributes.details
    ]


async def reset_to_the_first_task(client: Client, standins: FulfillmentStandIns) -> str:
    """A parcel of the mugs in transit; the fulfilment reset to its first workflow task
    (the README's repair), staff's Update applied again: the run names the same parcel,
    starts no second workflow for it, and follows it and the tea's parcel to the door."""
    script, workflow_id = await started(client, standins)
    first = await latest(client, workflow_id).execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2))
    )
    await moved(client, script, first.shipment_id, ShipmentStatus.IN_TRANSIT)
    await until(client, workflow_id, lambda v: v.status is FulfillmentStatus.PARTIALLY_SHIPPED)

    first_task = (await completed_tasks(client, workflow_id))[0]
    await reset(client, workflow_id, first_task)
    again = await until(
        client, workflow_id, lambda v: len(v.shipments) == 1 and script.ran.count(OPEN) == 2
    )
    assert set(script.shipments) == {first.shipment_id}, script.shipments  # never another
    assert [(s.shipment_id, s.status) for s in again.shipments] == [
        (first.shipment_id, ShipmentStatus.IN_TRANSIT)
    ]
    assert again.status is FulfillmentStatus.PARTIALLY_SHIPPED
    runs = client.list_workflows(f'WorkflowId = "{shipment_workflow_id(first.shipment_id)}"')
    assert len([run async for run in runs]) == 1  # its workflow was started once

    await moved(client, script, first.shipment_id, ShipmentStatus.DELIVERED)
    tea = await latest(client, workflow_id).execute_update(
        FulfillmentWorkflow.create_shipment, parcel((TEA, 1))
    )
    await moved(client, script, tea.shipment_id, ShipmentStatus.DELIVERED)
    done = await latest(client, workflow_id).result()
    assert done.status is FulfillmentStatus.DELIVERED
    return workflow_id


async def reset_without_its_updates(client: Client, standins: FulfillmentStandIns) -> str:
    """The whole order in one parcel, in transit; the fulfilment reset to the workflow
    task that took staff's Update, Updates not sent again: at the reset point the run
    reads its fulfilment again and knows the parcel as stored, follows it to the door
    and ends."""
    script, workflow_id = await started(client, standins)
    whole = await latest(client, workflow_id).execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2), (TEA, 1))
    )
    await moved(client, script, whole.shipment_id, ShipmentStatus.IN_TRANSIT)
    await until(client, workflow_id, lambda v: v.status is FulfillmentStatus.SHIPPED)

    took_the_update = await task_that_took_the_update(client, workflow_id)
    await reset(
        client,
        workflow_id,
        took_the_update,
        ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE,
    )
    again = await until(client, workflow_id, lambda v: v.status is FulfillmentStatus.SHIPPED)
    assert [(s.shipment_id, s.status) for s in again.shipments] == [
        (whole.shipment_id, ShipmentStatus.IN_TRANSIT)
    ]
    assert set(script.shipments) == {whole.shipment_id}
    assert script.ran.count(OPEN) == 2  # read again at the reset point
    assert any(RESET_READS_THE_DATABASE in p for p in await patches(client, workflow_id))

    await moved(client, script, whole.shipment_id, ShipmentStatus.DELIVERED)
    done = await latest(client, workflow_id).result()
    assert done.status is FulfillmentStatus.DELIVERED
    assert [(s.shipment_id, s.status) for s in done.shipments] == [
        (whole.shipment_id, ShipmentStatus.DELIVERED)
    ]
    return workflow_id


async def reset_after_a_released_hold(client: Client, standins: FulfillmentStandIns) -> str:
    """The whole order in one parcel; the carrier fails to deliver it (an exception: the
    fulfilment goes on hold, the warehouse emailed) and staff release the hold. The
    fulfilment is reset to before the exception: Temporal tells the run of it again, and
    of staff's release; the exception holds the fulfilment no second time (its hold is
    keyed), the release finds nothing to release, and the parcel is followed to the door."""
    script, workflow_id = await started(client, standins)
    whole = await latest(client, workflow_id).execute_update(
        FulfillmentWorkflow.create_shipment, parcel((MUGS, 2), (TEA, 1))
    )
    script.stored[whole.shipment_id].status = ShipmentStatus.FAILURE
    await carrier(
        client, whole.shipment_id, ShipmentStatus.FAILURE, exception=True, detail="no access"
    )
    await until(client, workflow_id, lambda v: v.hold_reason is not None)
    await latest(client, workflow_id).execute_update(FulfillmentWorkflow.release)
    assert script.holds_placed == 1

    before_the_exception = await task_before_the_first_signal(client, workflow_id)
    await reset(client, workflow_id, before_the_exception)
    again = await until(
        client, workflow_id, lambda v: script.ran.count(HOLD) == 2 and v.hold_reason is None
    )
    assert [(s.shipment_id, s.status) for s in again.shipments] == [
        (whole.shipment_id, ShipmentStatus.FAILURE)
    ]
    assert script.holds_placed == 1  # the warehouse emailed once
    assert {i["key"] for i in script.inputs(HOLD)} == {f"hold:{whole.shipment_id}:1"}

    await moved(client, script, whole.shipment_id, ShipmentStatus.DELIVERED)
    done = await latest(client, workflow_id).result()
    assert (done.status, done.hold_reason) == (FulfillmentStatus.DELIVERED, None)
    return workflow_id


async def task_before_the_first_signal(client: Client, workflow_id: str) -> int:
    """The last completed workflow task before the workflow was first signalled."""
    signalled = [
        e.event_id
        async for e in client.get_workflow_handle(workflow_id).fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    return max(t for t in await completed_tasks(client, workflow_id) if t < signalled[0])


async def completed_tasks(client: Client, workflow_id: str) -> list[int]:
    """The event ids of the workflow's completed tasks, oldest first."""
    return [
        e.event_id
        async for e in client.get_workflow_handle(workflow_id).fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]


async def updates_accepted(client: Client, workflow_id: str) -> list[int]:
    """The event ids of the Updates the workflow accepted, oldest first."""
    return [
        e.event_id
        async for e in client.get_workflow_handle(workflow_id).fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def task_that_took_the_update(client: Client, workflow_id: str, index: int = 0) -> int:
    """The completed workflow task that accepted the ``index``th Update (its events
    follow that task's completion)."""
    accepted = (await updates_accepted(client, workflow_id))[index]
    return max(t for t in await completed_tasks(client, workflow_id) if t < accepted)
