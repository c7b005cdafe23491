"""``FulfillmentWorkflow``'s recordings, with its own stand-ins
(``tests/workflows/fulfillment_standins.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from models.fulfillment import FulfillmentStatus, ShipmentStatus
from temporal.queues import TaskQueue
from tests.workflows.fulfillment_standins import (
    CANCEL,
    MUGS,
    REFUND,
    FulfillmentStandIns,
    carrier,
    start_fulfilment,
)
from tests.workflows.fulfillment_standins import TEA as TEA_LINE
from tests.workflows.order_standins import Block, until_event
from tests.workflows.recordings import Recording, recording
from workflows.fulfillment import FulfillmentWorkflow
from workflows.types.fulfillment import fulfillment_workflow_id
from workflows.types.fulfillment_orders import (
    CancelFulfillmentRequest,
    FulfillmentInput,
    FulfillmentView,
    HoldRequest,
    LineQuantity,
    ShipmentRequest,
)

# FulfillmentWorkflow's recordings run with its own stand-ins (which answer some of the
# order activities' names too), after the others.
FULFILMENTS = FulfillmentStandIns()
FULFILMENT_RECORDINGS: set[str] = set()


def fulfilment_recording(name: str) -> Callable[[Recording], Recording]:
    FULFILMENT_RECORDINGS.add(name)
    return recording(name)


def _parcel(*lines: tuple[str, int]) -> ShipmentRequest:
    return ShipmentRequest(lines=[LineQuantity(order_line_id=ln, quantity=q) for ln, q in lines])


async def _fulfilment_ends(handle: WorkflowHandle[Any, FulfillmentView], status: str) -> None:
    view = await handle.result()
    assert view.status == status, view


# Since the "local-fulfillment-steps" patch (its parcels' workflows since
# "local-tracking-steps"): local database steps, upserts only of what changed; since
# "parcel-id-from-update", each parcel named by its Update's id.
# Since "fulfillment-patches-decided-at-start": that patch is asked in the first
# workflow task, and the ones it stands for (parcel-id-from-update, cancel-until-answered,
# handlers-finish-when-cancelled) are not asked.
# Since "fulfillment-reset-reads-the-database": its marker in the first task, each
# parcel named from the workflow's start and started once (REJECT_DUPLICATE).
@fulfilment_recording("fulfillment_delivered_reset_reads_the_database")
@fulfilment_recording("fulfillment_delivered_patches_decided_at_start")
@fulfilment_recording("fulfillment_parcels_named_by_their_updates")
@fulfilment_recording("fulfillment_delivered_in_two_parcels_local_steps")
@fulfilment_recording("fulfillment_delivered_in_two_parcels")
async def fulfilment_delivered(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    mugs = await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((MUGS, 2)))
    tea = await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((TEA_LINE, 1)))
    for shipment in (mugs, tea):
        await carrier(env.client, shipment.shipment_id, ShipmentStatus.LABEL_PURCHASED)
        await carrier(env.client, shipment.shipment_id, ShipmentStatus.IN_TRANSIT)
    await carrier(env.client, mugs.shipment_id, ShipmentStatus.DELIVERED)
    await carrier(env.client, tea.shipment_id, ShipmentStatus.DELIVERED)
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


@fulfilment_recording("fulfillment_cancelled_from_temporal_patches_decided_at_start")
@fulfilment_recording("fulfillment_cancelled_from_temporal_while_undoing")
async def fulfilment_cancelled_while_undoing(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "handlers-finish-when-cancelled" patch: staff's cancel is refunding the
    order when the workflow is cancelled from Temporal; the undo finishes, then the
    workflow ends cancelled."""
    script = FULFILMENTS.fulfilment()
    refund = script.held[REFUND] = Block()
    handle = await start_fulfilment(env.client, script.order_id)
    update = await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(reason="changed mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await asyncio.wait_for(refund.started.wait(), 10)
    await handle.cancel()
    await until_event(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    refund.release()
    assert (await update.result()).status == FulfillmentStatus.CANCELLED
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    return handle.id


@fulfilment_recording("fulfillment_cancelled_before_label_local_steps")
@fulfilment_recording("fulfillment_cancelled_before_label")
async def fulfilment_cancelled(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((MUGS, 1)))
    await handle.execute_update(
        FulfillmentWorkflow.cancel, CancelFulfillmentRequest(reason="changed mind")
    )
    await _fulfilment_ends(handle, FulfillmentStatus.CANCELLED)
    return handle.id


# Since the "cancel-until-answered" patch: the cancel step's answer is lost six times
# (more than a staff step's five attempts), and the cancel goes on to the refund.
@fulfilment_recording("fulfillment_cancel_answered_late_patches_decided_at_start")
@fulfilment_recording("fulfillment_cancel_step_answered_late")
async def fulfilment_cancel_answered_late(env: WorkflowEnvironment, queue: str) -> str:
    script = FULFILMENTS.fulfilment()
    script.flaky[CANCEL] = 6
    handle = await start_fulfilment(env.client, script.order_id)
    await handle.execute_update(FulfillmentWorkflow.create_shipment, _parcel((MUGS, 1)))
    await handle.start_update(
        FulfillmentWorkflow.cancel,
        CancelFulfillmentRequest(reason="changed mind"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    await _fulfilment_ends(handle, FulfillmentStatus.CANCELLED)
    return handle.id


@fulfilment_recording("fulfillment_held_by_carrier_then_released_local_steps")
@fulfilment_recording("fulfillment_held_by_carrier_then_released")
async def fulfilment_held(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    await handle.execute_update(FulfillmentWorkflow.hold, HoldRequest(reason="address check"))
    await handle.execute_update(FulfillmentWorkflow.release)
    lost = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, _parcel((MUGS, 2), (TEA_LINE, 1))
    )
    await carrier(
        env.client, lost.shipment_id, ShipmentStatus.FAILURE, exception=True, detail="no access"
    )
    for _ in range(100):  # the hold is the workflow's next step
        if (await handle.query(FulfillmentWorkflow.status)).hold_reason:
            break
        await asyncio.sleep(0.05)
    await handle.execute_update(FulfillmentWorkflow.release)
    await carrier(env.client, lost.shipment_id, ShipmentStatus.DELIVERED)
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


# A parcel whose cancel the carrier refused (it scanned the label) tells its fulfilment,
# still labelled: an exception, the fulfilment on hold; released, it is delivered.
@fulfilment_recording("fulfillment_held_for_a_refused_parcel_cancel")
async def fulfilment_held_for_a_refused_cancel(env: WorkflowEnvironment, queue: str) -> str:
    handle = await start_fulfilment(env.client, FULFILMENTS.fulfilment().order_id)
    labelled = await handle.execute_update(
        FulfillmentWorkflow.create_shipment, _parcel((MUGS, 2), (TEA_LINE, 1))
    )
    await carrier(env.client, labelled.shipment_id, ShipmentStatus.LABEL_PURCHASED)
    await carrier(
        env.client,
        labelled.shipment_id,
        ShipmentStatus.LABEL_PURCHASED,
        exception=True,
        cancel_refused=True,
        detail="cancel refused: the carrier has scanned the label; still tracked",
    )
    for _ in range(100):  # the hold is the workflow's next step
        if (await handle.query(FulfillmentWorkflow.status)).hold_reason:
            break
        await asyncio.sleep(0.05)
    await handle.execute_update(FulfillmentWorkflow.release)
    await carrier(env.client, labelled.shipment_id, ShipmentStatus.DELIVERED)
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id


# Since the "updates-wait-for-open" patch: an Update waits for the opening before it takes
# the lock; this one comes with the start (in the first workflow task).
@fulfilment_recording("fulfillment_parcel_with_the_start")
async def fulfilment_parcel_with_the_start(env: WorkflowEnvironment, queue: str) -> str:
    order_id = FULFILMENTS.fulfilment().order_id
    start = WithStartWorkflowOperation(
        FulfillmentWorkflow.run,
        FulfillmentInput(order_id=order_id, priority=40, priority_level="high"),
        id=fulfillment_workflow_id(order_id),
        task_queue=str(TaskQueue.ORDERS),
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    parcel = await env.client.execute_update_with_start_workflow(
        FulfillmentWorkflow.create_shipment,
        _parcel((MUGS, 2), (TEA_LINE, 1)),
        start_workflow_operation=start,
    )
    await carrier(env.client, parcel.shipment_id, ShipmentStatus.DELIVERED)
    handle = await start.workflow_handle()
    await _fulfilment_ends(handle, FulfillmentStatus.DELIVERED)
    return handle.id
