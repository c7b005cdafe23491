"""``ShipmentWorkflow``'s recordings, with its own stand-ins
(``tests/workflows/shipment_standins.py``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.fulfillment import ShipmentStatus
from tests.workflows.recordings import Recording, recording
from tests.workflows.shipment_standins import (
    BOOK,
    DELAYED,
    DELIVERED,
    OUT,
    PRE,
    TRANSIT,
    ShipmentStandIns,
    parcel,
    progress,
    refused_again_then_sent_again,
    start_under_parent,
    until,
    update,
)
from tests.workflows.shipment_standins import REFUND as LABEL_REFUND
from workflows.shipments import ShipmentWorkflow
from workflows.types.fulfillment import CARRIER_UPDATE_SIGNAL, RETRY_LABEL_SIGNAL, RetryLabel
from workflows.types.shipments import ShipmentView

# ShipmentWorkflow: stand-ins keep each parcel's status; parcel ids name the recordings.
# They run with their own stand-ins (the real ShipmentWorkflow under a stand-in parent on
# the orders queue, where FulfillmentWorkflow's stand-ins have a stand-in parcel), last.
SHIPMENT_STANDINS = ShipmentStandIns()
SHIPMENT_RECORDINGS: set[str] = set()


def shipment_recording(name: str) -> Callable[[Recording], Recording]:
    SHIPMENT_RECORDINGS.add(name)
    return recording(name)


SHIPMENT_STANDINS.refusals["shp_recorded_refused"] = 1
SHIPMENT_STANDINS.refusals["shp_recorded_correction_twice"] = 2
SHIPMENT_STANDINS.refusals["shp_recorded_correction_older_worker"] = 2


async def _shipment_ends(handle: WorkflowHandle[Any, ShipmentView], status: str) -> None:
    view = await handle.result()
    assert view.status == status, view


@shipment_recording("shipment_delivered")
async def shipment_delivered(env: WorkflowEnvironment, queue: str) -> str:
    """Under a fulfilment (signals to the parent), with a redelivery and a late update."""
    return await _delivered(env, "shp_recorded_delivered")


@shipment_recording("shipment_delivered_local_steps")
async def shipment_delivered_local_steps(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "local-tracking-steps" patch: the same, recorded in local steps, the
    updates that waited together."""
    return await _delivered(env, "shp_recorded_delivered_local_steps")


@shipment_recording("shipment_delivered_patches_decided_at_start")
async def shipment_delivered_patches_decided_at_start(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "shipment-patches-decided-at-start" patch: the same, the stall clock's
    patch asked in the first workflow task (its marker there), not after a local step."""
    return await _delivered(env, "shp_recorded_delivered_patches_at_start")


async def _delivered(env: WorkflowEnvironment, sid: str) -> str:
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    for event_id, statuses in [
        ("e1", (PRE, TRANSIT)),
        ("e2", (PRE, TRANSIT, OUT)),
        ("e2", (PRE, TRANSIT, OUT)),
        ("e0", (PRE, TRANSIT)),
        ("e3", (PRE, TRANSIT, OUT, DELIVERED)),
    ]:
        await child.signal(CARRIER_UPDATE_SIGNAL, update(event_id, sid, *statuses))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    return child.id


@shipment_recording("shipment_delayed_then_delivered")
async def shipment_delayed(env: WorkflowEnvironment, queue: str) -> str:
    return await _delayed(env, "shp_recorded_delayed")


@shipment_recording("shipment_delayed_then_delivered_local_steps")
async def shipment_delayed_local_steps(env: WorkflowEnvironment, queue: str) -> str:
    return await _delayed(env, "shp_recorded_delayed_local_steps")


async def _delayed(env: WorkflowEnvironment, sid: str) -> str:
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await env.sleep(timedelta(hours=73))
    await SHIPMENT_STANDINS.called(sid, DELAYED)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_stalled_from_carrier_time")
async def shipment_stalled_from_carrier_time(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "stall-from-carrier-time" patch: the carrier's scans, 80 h old, make the
    parcel late at once; the next scan moves it on."""
    return await _stalled_from_carrier_time(env, "shp_recorded_stalled_by_carrier")


@shipment_recording("shipment_stalled_patches_decided_at_start")
async def shipment_stalled_patches_decided_at_start(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "shipment-patches-decided-at-start" patch: the same, in local steps, the
    stall clock's patch asked in the first workflow task."""
    return await _stalled_from_carrier_time(env, "shp_recorded_stalled_patches_at_start")


async def _stalled_from_carrier_time(env: WorkflowEnvironment, sid: str) -> str:
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    old = await env.get_current_time() - timedelta(hours=80)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, last_at=old))
    await env.sleep(timedelta(seconds=11))
    await SHIPMENT_STANDINS.called(sid, DELAYED)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_label_refused_then_retried")
async def shipment_refused(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_refused"
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await child.signal(RETRY_LABEL_SIGNAL)
    await SHIPMENT_STANDINS.called(sid, BOOK, 2)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_label_correction_sent_twice")
async def shipment_correction_sent_twice(env: WorkflowEnvironment, queue: str) -> str:
    """Since ``retry_label`` names its correction: the corrected address refused too,
    the same correction sent again (dropped), then a new one that is bought."""
    sid = "shp_recorded_correction_twice"
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await refused_again_then_sent_again(SHIPMENT_STANDINS, child, sid)
    await child.signal(RETRY_LABEL_SIGNAL, RetryLabel(correction_id="corr_2"))
    await SHIPMENT_STANDINS.called(sid, BOOK, 3)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    assert SHIPMENT_STANDINS.ran(sid).count(BOOK) == 3
    return child.id


@shipment_recording("shipment_correction_repeated_on_an_older_worker")
async def shipment_correction_repeated_on_an_older_worker(
    env: WorkflowEnvironment, queue: str
) -> str:
    """A worker of the release before corrections were named (its ``retry_label`` takes no
    argument) serves a parcel while this release's API and relay send them: the SDK
    calls the handler without the argument, so ``corr_1`` sent again books once more
    (the label the carrier refused twice is bought at the third try). This release
    replays it as it ran. Recorded with that release's ``workflows/shipment_state.py``
    in place of ours (``git show 703be9b^:workflows/shipment_state.py``, our
    ``workflows/shipments.py`` without ``retry-label-once-per-correction``, both in a
    copy of ``workflows/`` found first on the path: from that copy's parent directory,
    ``PYTHONPATH=.:/path/to/checkout python -m tests.workflows.record_histories NAME``)."""
    if "retry" in inspect.signature(ShipmentWorkflow.retry_label).parameters:
        raise RuntimeError("record this on the release before's ShipmentWorkflow (docstring)")
    sid = "shp_recorded_correction_older_worker"
    child, _parent = await start_under_parent(env.client, parcel(sid))
    await refused_again_then_sent_again(SHIPMENT_STANDINS, child, sid)
    await SHIPMENT_STANDINS.called(sid, BOOK, 3)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    return child.id


@shipment_recording("shipment_continued_as_new")
async def shipment_continued(env: WorkflowEnvironment, queue: str) -> str:
    """The first run's history: it ends by continuing as new."""
    sid = "shp_recorded_continued"
    handle = await env.client.start_workflow(
        ShipmentWorkflow.run,
        parcel(sid, max_updates_per_run=2),
        id=f"shipment-{sid}",
        task_queue="orders",
    )
    first = handle.result_run_id
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    latest = env.client.get_workflow_handle(handle.id, result_type=ShipmentView)
    await SHIPMENT_STANDINS.called(sid, "shipping.record_update", 2)
    for _ in range(500):
        if (await latest.describe()).run_id != first:
            break
        await asyncio.sleep(0.01)
    await latest.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    await _shipment_ends(latest, ShipmentStatus.DELIVERED)
    return f"{handle.id}@{first}"


@shipment_recording("shipment_redelivered_with_the_start")
async def shipment_redelivered_with_the_start(env: WorkflowEnvironment, queue: str) -> str:
    """Since the "early-carrier-updates-deduped" patch: a run carrying e0 and e1 (as a
    continued run does) gets e1 again in its first workflow task (signal-with-start), a
    new e2 with it, then e3: e1 is dropped, e2 and e3 recorded."""
    sid = "shp_recorded_redelivered_with_start"
    handle = await env.client.start_workflow(
        ShipmentWorkflow.run,
        parcel(
            sid,
            status=ShipmentStatus.IN_TRANSIT,
            tracking_code=f"9400{sid}",
            seen_event_ids=["e0", "e1"],
        ),
        id=f"shipment-{sid}",
        task_queue="orders",
        start_signal=CARRIER_UPDATE_SIGNAL,
        start_signal_args=[update("e1", sid, PRE, TRANSIT)],
    )
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    await SHIPMENT_STANDINS.called(sid, "shipping.record_update", 1)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    await _shipment_ends(handle, ShipmentStatus.DELIVERED)
    assert SHIPMENT_STANDINS.ran(sid) == ["shipping.record_update"] * 2
    return handle.id


@shipment_recording("shipment_cancelled_label_refunded")
async def shipment_cancelled(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_cancelled"
    handle = await env.client.start_workflow(
        ShipmentWorkflow.run, parcel(sid), id=f"shipment-{sid}", task_queue="orders"
    )
    await SHIPMENT_STANDINS.called(sid, BOOK)
    for _ in range(500):
        view = await handle.query(ShipmentWorkflow.status)
        if view.status == ShipmentStatus.LABEL_PURCHASED:
            break
        await asyncio.sleep(0.01)
    await handle.cancel()
    await _shipment_ends(handle, ShipmentStatus.CANCELLED)
    return handle.id


# Since the "cancel-refused-keeps-tracking" patch: cancelled after the carrier scanned the
# label, the refund is refused; the parcel is kept tracked to the door, the parent told.
SHIPMENT_STANDINS.in_use.add("shp_recorded_cancel_refused")


@shipment_recording("shipment_cancel_refused_kept_tracking")
async def shipment_cancel_refused(env: WorkflowEnvironment, queue: str) -> str:
    return await shipment_cancel_refused_in(env, "shp_recorded_cancel_refused")


async def shipment_cancel_refused_in(env: WorkflowEnvironment, sid: str) -> str:
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    for _ in range(500):
        view = await child.query(ShipmentWorkflow.status)
        if view.status == ShipmentStatus.LABEL_PURCHASED:
            break
        await asyncio.sleep(0.01)
    await child.cancel()
    await SHIPMENT_STANDINS.called(sid, LABEL_REFUND)
    for _ in range(500):
        if (await child.query(ShipmentWorkflow.status)).problem:
            break
        await asyncio.sleep(0.01)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    return child.id


# Since the "repeated-cancel-refused" patch: the refusal is remembered (carried into a
# later run), the first run recording the patch's marker.
SHIPMENT_STANDINS.in_use.add("shp_recorded_cancel_refused_remembered")


@shipment_recording("shipment_cancel_refused_remembered")
async def shipment_cancel_refused_remembered(env: WorkflowEnvironment, queue: str) -> str:
    return await shipment_cancel_refused_in(env, "shp_recorded_cancel_refused_remembered")


# A later run of a parcel whose cancel the carrier refused (its carried input says so),
# cancelled again: refused the same way, the parent told, the carrier not asked; tracked
# to the door. Started with the carried input: the test server cannot continue a
# cancelled workflow as new.
@shipment_recording("shipment_cancel_refused_again_in_a_later_run")
async def shipment_cancel_refused_again(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_cancel_refused_again"
    child, parent = await start_under_parent(
        env.client,
        parcel(
            sid,
            status=ShipmentStatus.IN_TRANSIT,
            tracking_code=f"9400{sid}",
            seen_event_ids=["e1"],
            cancel_refused=True,
        ),
    )
    await until(child, lambda view: view.status == ShipmentStatus.IN_TRANSIT)
    await child.cancel()
    for _ in range(500):
        if await progress(parent):
            break
        await asyncio.sleep(0.01)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    assert LABEL_REFUND not in SHIPMENT_STANDINS.ran(sid)
    return child.id


# Since the "cancel-keeps-unrecorded-updates" patch: a cancel and the parcel's delivery
# reach it in one workflow task (both came while a pre-transit scan's local step held the
# previous one open); the delivery's step, started first, is cancelled; the carrier refuses
# the cancel, and the delivery, pending again, is recorded after it.
SHIPMENT_STANDINS.in_use.add("shp_recorded_cancel_with_an_update")


@shipment_recording("shipment_cancelled_with_an_update")
async def shipment_cancelled_with_an_update(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_cancel_with_an_update"
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await until(child, lambda view: view.status == ShipmentStatus.LABEL_PURCHASED)
    await SHIPMENT_STANDINS.cancel_with_update(
        child, sid, update("e1", sid, PRE, TRANSIT, DELIVERED)
    )
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    assert SHIPMENT_STANDINS.batches[sid] == [1, 1], SHIPMENT_STANDINS.batches[sid]
    return child.id


# Since the "moving-parcel-cancel-refused" patch: cancelled once the parcel is in transit,
# the cancel is refused without asking the carrier (nothing to void), the parent told, and
# the parcel tracked to the door.
@shipment_recording("shipment_moving_parcel_cancel_refused")
async def shipment_moving_parcel_cancel_refused(env: WorkflowEnvironment, queue: str) -> str:
    sid = "shp_recorded_moving_cancel_refused"
    child, parent = await start_under_parent(env.client, parcel(sid))
    await SHIPMENT_STANDINS.called(sid, BOOK)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await until(child, lambda view: view.status == ShipmentStatus.IN_TRANSIT)
    await child.cancel()
    await until(child, lambda view: view.problem is not None)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    await _shipment_ends(child, ShipmentStatus.DELIVERED)
    await parent.result()
    assert LABEL_REFUND not in SHIPMENT_STANDINS.ran(sid)
    return child.id
