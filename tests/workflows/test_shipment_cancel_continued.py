"""A parcel's cancel refused, then asked again after its run continued as new, on a dev
server of this module's own (with ``ShipmentWorkflow``'s stand-in activities).

Not on the time-skipping server: it cannot continue a workflow as new once a cancel was
requested of it (``respond_workflow_task_completed``: "StartWorkflowExecutionRequest
missing method getNamespace"), which is where a second cancel reaches a parcel: Temporal
delivers one cancel per run, and a second request of the same run changes nothing. Not
on the session's dev server either: the stand-ins poll the real ``orders`` queue, where
workflows other modules left there would be theirs to run.

Here too, a cancel that reaches a parcel together with a carrier update: it needs a
workflow task held open by a local step, which the time-skipping server's clock does not
suit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.fulfillment import ShipmentStatus
from temporal.queues import TaskQueue
from tests.conftest import start_dev_server
from tests.workflows.shipment_standins import (
    BOOK,
    DELIVERED,
    OUT,
    PRE,
    REFUND,
    TRANSIT,
    ShipmentStandIns,
    parcel,
    until,
    update,
)
from workflows.shipment_patches import CANCEL_KEEPS_UNRECORDED_UPDATES
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    SHIPMENT_WORKFLOW,
    shipment_workflow_id,
)
from workflows.types.shipments import ShipmentView


@pytest.fixture(scope="module")
async def parcels() -> AsyncIterator[tuple[WorkflowEnvironment, ShipmentStandIns]]:
    env = await start_dev_server()
    try:
        async with ShipmentStandIns().running(env.client) as running:
            yield env, running
    finally:
        await env.shutdown()


async def test_a_cancel_refused_once_is_refused_again_after_continue_as_new(
    parcels: tuple[WorkflowEnvironment, ShipmentStandIns],
) -> None:
    """The carrier refused the first cancel (it scanned the label); the parcel moves on
    and its run continues as new; an operator cancels it again. The new run knows of
    the refusal (its ``problem`` says so) and answers as the first did: the parcel is
    still tracked, the carrier not asked again, and it is followed to the door. Before,
    the new run ended at the second cancel (a moving parcel has no label to refund),
    the parcel on its way with nobody tracking it. (The fulfilment is told as the first
    time: ``test_shipment_workflow.py``.)"""
    env, standins = parcels
    sid = f"shp_{uuid4().hex[:10]}"
    standins.in_use.add(sid)
    handle = await env.client.start_workflow(
        SHIPMENT_WORKFLOW,
        parcel(sid, max_updates_per_run=2),
        id=shipment_workflow_id(sid),
        task_queue=str(TaskQueue.ORDERS),
        result_type=ShipmentView,
    )
    first = handle.result_run_id
    await standins.called(sid, BOOK)
    await until(handle, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await handle.cancel()
    await until(handle, lambda v: v.problem is not None)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    latest = env.client.get_workflow_handle(handle.id, result_type=ShipmentView)
    for _ in range(500):
        if (await latest.describe()).run_id != first:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the parcel's run never continued as new")
    carried = await until(latest, lambda v: v.status is ShipmentStatus.OUT_FOR_DELIVERY)
    assert "cancel refused" in (carried.problem or "")
    await latest.cancel()
    await latest.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    assert (await latest.result()).status is ShipmentStatus.DELIVERED
    assert standins.ran(sid).count(REFUND) == 1


async def test_an_update_whose_recording_a_cancel_interrupted_is_recorded_after_it(
    parcels: tuple[WorkflowEnvironment, ShipmentStandIns],
) -> None:
    """A cancel and a carrier update reach the parcel in one workflow task (both came
    while a step held the previous one open). The SDK runs the signal first, so the
    update's step starts and the cancel then cancels it; the carrier refuses the cancel
    and the parcel is tracked on, its update recorded then: it is delivered. Before,
    the update was lost with its cancelled step and the parcel waited for news it had
    been sent (the lead's hang of the test above, when its cancel and delivery came
    together)."""
    env, standins = parcels
    sid = f"shp_{uuid4().hex[:10]}"
    standins.in_use.add(sid)
    handle = await env.client.start_workflow(
        SHIPMENT_WORKFLOW,
        parcel(sid),
        id=shipment_workflow_id(sid),
        task_queue=str(TaskQueue.ORDERS),
        result_type=ShipmentView,
    )
    await standins.called(sid, BOOK)
    await until(handle, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await standins.cancel_with_update(handle, sid, update("e1", sid, PRE, TRANSIT, DELIVERED))
    delivered = await until(handle, lambda v: v.status is ShipmentStatus.DELIVERED)
    assert "cancel refused" in (delivered.problem or "")
    assert (await handle.result()).status is ShipmentStatus.DELIVERED
    assert standins.ran(sid).count(REFUND) == 1
    # The delivery's step was cancelled (the patch's marker says so), then run again.
    assert CANCEL_KEEPS_UNRECORDED_UPDATES in await patches(handle)
    assert standins.batches[sid] == [1, 1]


async def patches(handle: WorkflowHandle[Any, ShipmentView]) -> list[str]:
    """The patches the parcel's history has markers of."""
    history = await handle.fetch_history()
    return [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
