"""``ShipmentWorkflow`` branch by branch on the time-skipping server, with stand-in
activities and a stand-in ``FulfillmentWorkflow`` parent that keeps what it is told:
the label, updates in order, duplicates and late updates, exceptions, a refused label,
the stall timer, continue-as-new, the refund of an unused label, and signals that come
with the start (in the first workflow task, before ``run``). The real activities
are proven against PostgreSQL in ``tests/services/test_shipments.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from integrations.shipping.provider import CarrierStatus
from models.fulfillment import ShipmentStatus
from temporal.queues import TaskQueue
from temporal.search_attributes import ORDER_ID, SHIPMENT_STATUS
from tests.workflows.shipment_standins import (
    BOOK,
    DELAYED,
    DELIVERED,
    OUT,
    PRE,
    RECORD,
    REFUND,
    REFUSED,
    TRANSIT,
    ShipmentStandIns,
    parcel,
    progress,
    refused_again_then_sent_again,
    start_under_parent,
    until,
    update,
    view,
)
from workflows.shipment_state import BACKFILL_GRACE
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    RETRY_LABEL_SIGNAL,
    SHIPMENT_WORKFLOW,
    RetryLabel,
    ShipmentInput,
    shipment_workflow_id,
)
from workflows.types.shipments import ShipmentView


@pytest.fixture(scope="module")
async def parcels(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[ShipmentStandIns]:
    async with ShipmentStandIns().running(time_skipping_env.client) as running:
        yield running


def new_id() -> str:
    return f"shp_{uuid4().hex[:10]}"


async def standalone(
    env: WorkflowEnvironment, input: ShipmentInput, signal: str | None = None, *args: Any
) -> WorkflowHandle[Any, ShipmentView]:
    """The parcel started without a parent; with ``signal`` in its first workflow task
    (signal-with-start: the handler runs before ``run``, as in a continued run's)."""
    return await env.client.start_workflow(
        SHIPMENT_WORKFLOW,
        input,
        id=shipment_workflow_id(input.shipment_id),
        task_queue=str(TaskQueue.ORDERS),
        result_type=ShipmentView,
        start_signal=signal,
        start_signal_args=list(args),
    )


async def cancelled(
    env: WorkflowEnvironment, *handles: WorkflowHandle[Any, ShipmentView]
) -> list[ShipmentView]:
    """Cancel parcels and wait for them to end, with the clock held still.

    A cancel needs no time to pass, and awaiting a result with the clock let go is what
    skipped a parcel left waiting ten years ahead: the test server gives every workflow
    a ten-year execution timeout, and while a result is awaited it skips time whenever
    no task is outstanding, also in the moment between the awaited workflow's end and
    the client holding the clock again. A flagged parcel waits with no timer of its
    own, so its ten-year timeout was the next thing due: on a busy machine the second
    parcel timed out while the first one's result came back."""
    with env.auto_time_skipping_disabled():
        for handle in handles:
            await handle.cancel()
        return [await handle.result() for handle in handles]


def statuses(told: list[Any]) -> list[str]:
    return [str(p.status) for p in told]


async def test_a_parcel_is_labelled_then_follows_the_carrier_to_the_door(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    labelled = await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    assert labelled.tracking_code == f"9400{sid}"
    assert labelled.order_id == f"ord_{sid}"
    # One at a time, as a carrier's scans come (updates that wait are recorded together:
    # test_updates_that_wait_are_recorded_in_one_step_and_told_once).
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await until(child, lambda v: v.status is ShipmentStatus.IN_TRANSIT)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    await until(child, lambda v: v.status is ShipmentStatus.OUT_FOR_DELIVERY)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    done = await parent.result()
    assert done["status"] == "delivered"
    assert parcels.ran(sid) == [BOOK, RECORD, RECORD, RECORD]
    told = await progress(parent)
    assert statuses(told) == ["label_purchased", "in_transit", "out_for_delivery", "delivered"]
    assert not any(p.exception or p.delayed for p in told)
    attributes = (await child.describe()).typed_search_attributes
    assert attributes.get(SHIPMENT_STATUS) == "delivered"
    assert attributes.get(ORDER_ID) == f"ord_{sid}"


async def test_a_duplicate_is_dropped_and_a_late_update_never_moves_the_parcel_back(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await until(child, lambda v: v.status is ShipmentStatus.IN_TRANSIT)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))  # redelivery
    # An older event that arrives last (the carrier's retries cross).
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e0", sid, PRE, TRANSIT))
    await parcels.called(sid, RECORD, 3)
    assert (await until(child, lambda v: True)).status is ShipmentStatus.OUT_FOR_DELIVERY
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    assert (await child.result()).status is ShipmentStatus.DELIVERED
    assert parcels.ran(sid).count(RECORD) == 4  # e1, e2, e0, e3: the redelivery never ran
    told = statuses(await progress(parent))
    assert told == ["label_purchased", "in_transit", "out_for_delivery", "delivered"]


async def test_a_failed_delivery_is_an_exception_for_the_parent_and_the_parcel_is_still_tracked(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, TRANSIT, CarrierStatus.FAILURE))
    failed = await until(child, lambda v: v.status is ShipmentStatus.FAILURE)
    assert failed.status is ShipmentStatus.FAILURE
    [_, told] = await progress(parent)
    assert (told.status, told.exception, told.detail) == ("failure", True, "Failure")
    # Still waiting: the second attempt delivers it.
    await child.signal(
        CARRIER_UPDATE_SIGNAL, update("e2", sid, TRANSIT, CarrierStatus.FAILURE, DELIVERED)
    )
    assert (await child.result()).status is ShipmentStatus.DELIVERED
    assert [p.exception for p in await progress(parent)] == [False, True, False]


async def test_a_parcel_returned_to_sender_ends_as_an_exception(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await child.signal(
        CARRIER_UPDATE_SIGNAL, update("e1", sid, TRANSIT, CarrierStatus.RETURN_TO_SENDER)
    )
    assert (await child.result()).status is ShipmentStatus.RETURN_TO_SENDER
    last = (await progress(parent))[-1]
    assert (last.status, last.exception) == ("return_to_sender", True)


async def test_a_refused_label_holds_the_fulfilment_until_staff_retry(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    parcels.refusals[sid] = 1
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    stuck = await until(child, lambda v: v.problem is not None)
    assert (stuck.status, stuck.problem) == (ShipmentStatus.PENDING, REFUSED)
    [told] = await progress(parent)
    assert (told.status, told.exception, told.detail) == (
        "pending",
        True,
        f"label refused: {REFUSED}",
    )
    # Nothing more happens until staff ask again, however long it takes.
    await time_skipping_env.sleep(timedelta(days=10))
    assert parcels.ran(sid) == [BOOK]
    await child.signal(RETRY_LABEL_SIGNAL)
    booked = await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    assert booked.problem is None
    assert parcels.ran(sid) == [BOOK, BOOK]
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, DELIVERED))
    assert (await child.result()).status is ShipmentStatus.DELIVERED


async def test_a_correction_sent_twice_buys_at_most_one_more_label(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """Staff's correction owes one ``retry_label``; the relay sends it again when the
    first send's answer was lost. The carrier refuses the corrected address too, and the
    repeat (the same correction's id) comes while the parcel waits for staff again: it
    is not another try (before, it booked a third time with the address the carrier had
    just refused, and the parcel no longer said it waited for staff). A new correction
    is."""
    sid = new_id()
    parcels.refusals[sid] = 2
    child, _parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await refused_again_then_sent_again(parcels, child, sid)
    await time_skipping_env.sleep(timedelta(days=1))
    still = await view(child)
    assert (still.status, still.awaiting_retry) == (ShipmentStatus.PENDING, True)
    assert parcels.ran(sid) == [BOOK, BOOK]
    await child.signal(RETRY_LABEL_SIGNAL, RetryLabel(correction_id="corr_2"))
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    assert parcels.ran(sid) == [BOOK, BOOK, BOOK]
    await cancelled(time_skipping_env, child)


async def test_a_stalled_parcel_is_flagged_once_per_silence_and_still_waited_for(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await time_skipping_env.sleep(timedelta(hours=71))
    assert DELAYED not in parcels.ran(sid)
    await time_skipping_env.sleep(timedelta(hours=2))
    await parcels.called(sid, DELAYED)
    flagged = await until(child, lambda v: v.delayed)
    assert flagged.status is ShipmentStatus.LABEL_PURCHASED
    [flag] = parcels.inputs(sid, DELAYED)
    assert flag["stall_hours"] == 72.0
    told = (await progress(parent))[-1]
    assert (told.status, told.delayed, told.exception) == ("label_purchased", True, False)
    # Flagged once for this silence, however long it lasts.
    await time_skipping_env.sleep(timedelta(hours=200))
    assert parcels.ran(sid).count(DELAYED) == 1
    # News clears the flag; the next silence is flagged again.
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    moving = await until(child, lambda v: not v.delayed)
    assert moving.status is ShipmentStatus.IN_TRANSIT
    assert (await progress(parent))[-1].delayed is False
    await time_skipping_env.sleep(timedelta(hours=73))
    await parcels.called(sid, DELAYED, 2)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    done = await child.result()
    assert (done.status, done.delayed) == (ShipmentStatus.DELIVERED, False)


async def test_the_stall_clock_runs_from_the_carriers_latest_scan(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    env = time_skipping_env
    late, recent = new_id(), new_id()
    handles = {sid: await standalone(env, parcel(sid)) for sid in (late, recent)}
    for sid in handles:
        await parcels.called(sid, BOOK)
    now = await env.get_current_time()
    # The carrier's past scans, sent one after another (as shop seed does): the last
    # one is 80 h old, so the parcel is late already; it is flagged once, not between.
    for n, hours in enumerate((100, 90, 80)):
        scan = update(f"e{n}", late, PRE, TRANSIT, last_at=now - timedelta(hours=hours))
        await handles[late].signal(CARRIER_UPDATE_SIGNAL, scan)
    await parcels.called(late, RECORD, 3)
    await handles[recent].signal(
        CARRIER_UPDATE_SIGNAL, update("e1", recent, PRE, TRANSIT, last_at=now - timedelta(hours=10))
    )
    await parcels.called(recent, RECORD)
    await env.sleep(BACKFILL_GRACE + timedelta(seconds=1))
    await parcels.called(late, DELAYED)
    assert (await until(handles[late], lambda v: v.delayed)).status is ShipmentStatus.IN_TRANSIT
    [flag] = parcels.inputs(late, DELAYED)
    assert datetime.fromisoformat(flag["quiet_since"]) == now - timedelta(hours=80)
    # A late webhook with an older scan is news of nothing: still flagged, not again.
    stale = update("e9", late, PRE, TRANSIT, last_at=now - timedelta(hours=95))
    await handles[late].signal(CARRIER_UPDATE_SIGNAL, stale)
    await parcels.called(late, RECORD, 4)
    await env.sleep(BACKFILL_GRACE + timedelta(seconds=1))
    assert (await view(handles[late])).delayed
    assert parcels.ran(late).count(DELAYED) == 1
    # Ten hours of silence already: 62 more make the 72.
    await env.sleep(timedelta(hours=61, minutes=50))
    assert DELAYED not in parcels.ran(recent)
    assert not (await view(handles[recent])).delayed
    await env.sleep(timedelta(minutes=20))
    await parcels.called(recent, DELAYED)
    assert (await until(handles[recent], lambda v: v.delayed)).delayed
    assert parcels.ran(late).count(DELAYED) == 1
    # Moving parcels are not ended by a cancel (it is refused): delivered, with the
    # clock held still (as ``cancelled`` does, for the same reason).
    with env.auto_time_skipping_disabled():
        for sid, handle in handles.items():
            await handle.signal(CARRIER_UPDATE_SIGNAL, update("e99", sid, PRE, TRANSIT, DELIVERED))
        for handle in handles.values():
            assert (await handle.result()).status is ShipmentStatus.DELIVERED


async def test_the_stall_time_comes_from_the_input(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    handle = await standalone(time_skipping_env, parcel(sid, stall_hours=0.5))
    await parcels.called(sid, BOOK)
    await until(handle, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await time_skipping_env.sleep(timedelta(minutes=31))
    await parcels.called(sid, DELAYED)
    assert (await until(handle, lambda v: v.delayed)).delayed
    await cancelled(time_skipping_env, handle)


async def test_a_long_history_continues_as_new_with_its_state(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    handle = await standalone(time_skipping_env, parcel(sid, max_updates_per_run=2))
    first_run = handle.result_run_id
    await parcels.called(sid, BOOK)
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    for _ in range(500):
        if (await handle.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.01)
    old = time_skipping_env.client.get_workflow_handle(handle.id, run_id=first_run)
    events = [e async for e in old.fetch_history_events()]
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    carried = await view(time_skipping_env.client.get_workflow_handle(handle.id))
    assert (carried.status, carried.tracking_code) == (
        ShipmentStatus.OUT_FOR_DELIVERY,
        f"9400{sid}",
    )
    # The new run still knows e2 (dropped) and books no second label.
    latest = time_skipping_env.client.get_workflow_handle(handle.id, result_type=ShipmentView)
    await latest.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    await latest.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    assert (await latest.result()).status is ShipmentStatus.DELIVERED
    assert parcels.ran(sid) == [BOOK, RECORD, RECORD, RECORD]


async def refused_then_delivered(
    child: WorkflowHandle[Any, ShipmentView],
    parent: WorkflowHandle[Any, Any],
    status: ShipmentStatus,
    event_id: str,
    sid: str,
) -> None:
    """A cancelled parcel kept at ``status`` (its cancel refused, the parent told so as
    an exception), then followed to the door by the update ``event_id``."""
    kept = await until(child, lambda v: v.problem is not None)
    assert kept.status is status
    assert "cancel refused" in (kept.problem or "")
    told = (await progress(parent))[-1]
    assert (told.status, told.exception, told.cancel_refused) == (str(status), True, True)
    await child.signal(CARRIER_UPDATE_SIGNAL, update(event_id, sid, PRE, TRANSIT, DELIVERED))
    assert (await child.result()).status is ShipmentStatus.DELIVERED
    assert statuses(await progress(parent))[-1] == "delivered"


async def test_cancelled_after_the_label_the_label_is_refunded(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await child.cancel()
    assert (await child.result()).status is ShipmentStatus.CANCELLED
    assert parcels.ran(sid) == [BOOK, REFUND]
    assert statuses(await progress(parent))[-1] == "cancelled"


async def test_cancelled_after_the_carrier_scanned_the_label_it_is_kept_tracked(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """An operator cancels the parcel's workflow after the carrier scanned the label
    (its webhook not recorded yet): the refund is refused (False), the parcel stays
    labelled, the fulfilment hears of it as an exception (it goes on hold for staff) and
    the workflow follows the parcel to the door. Before, the run ended there, labelled,
    with nobody tracking the parcel."""
    sid = new_id()
    parcels.in_use.add(sid)
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await child.cancel()
    await parcels.called(sid, REFUND)
    await refused_then_delivered(child, parent, ShipmentStatus.LABEL_PURCHASED, "e1", sid)
    assert parcels.ran(sid) == [BOOK, REFUND, RECORD]


async def test_a_continued_run_tells_the_fulfilment_of_a_repeated_refused_cancel(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """A run carried over from one whose cancel the carrier refused, under its
    fulfilment: cancelled (Temporal delivers one cancel per run: a second cancel reaches
    a parcel in a later run), it tells the fulfilment as the first run did (an
    exception, ``cancel_refused``: it goes on hold for staff) and keeps tracking. Before,
    it ended without a word to anyone, the parcel on its way. Started with the carried
    input: the time-skipping server cannot continue a cancelled child as new
    (``test_shipment_cancel_continued.py`` continues one on a dev server)."""
    sid = new_id()
    moving = parcel(
        sid, status=ShipmentStatus.IN_TRANSIT, tracking_code=f"9400{sid}", cancel_refused=True
    )
    child, parent = await start_under_parent(time_skipping_env.client, moving)
    assert "cancel refused" in ((await until(child, lambda v: True)).problem or "")
    await child.cancel()
    for _ in range(500):
        told = await progress(parent)
        if told:
            break
        await asyncio.sleep(0.01)
    assert [(p.status, p.exception, p.cancel_refused) for p in told] == [("in_transit", True, True)]
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, DELIVERED))
    assert (await child.result()).status is ShipmentStatus.DELIVERED
    assert REFUND not in parcels.ran(sid)
    assert statuses(await progress(parent))[-1] == "delivered"


async def test_cancelled_once_the_parcel_moves_it_is_refused_and_kept_tracked(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """Since the "moving-parcel-cancel-refused" patch: an operator cancels the parcel's
    workflow once it is in transit. Nothing is refunded (the carrier is not asked), the
    fulfilment hears of it as a refused cancel (an exception: on hold for staff) and the
    workflow follows the parcel to the door. Before, the run ended there, in transit,
    with nobody tracking the parcel."""
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    await until(child, lambda v: v.status is ShipmentStatus.IN_TRANSIT)
    await child.cancel()
    await refused_then_delivered(child, parent, ShipmentStatus.IN_TRANSIT, "e2", sid)
    assert parcels.ran(sid) == [BOOK, RECORD, RECORD]


async def test_updates_that_wait_are_recorded_in_one_step_and_told_once(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """Since the "local-tracking-steps" patch: updates that arrive while the workflow
    records one are recorded together in one local step (a marker, no activity task),
    the parent is told once where they left the parcel, and a search attribute is
    upserted only when its value changes."""
    sid = new_id()
    child, parent = await start_under_parent(time_skipping_env.client, parcel(sid))
    await parcels.called(sid, BOOK)
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    gate = parcels.gates[sid] = asyncio.Event()
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    for _ in range(500):  # e1's step is running, held at the gate
        if parcels.batches[sid]:
            break
        await asyncio.sleep(0.01)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, OUT))  # again
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e3", sid, PRE, TRANSIT, OUT, DELIVERED))
    gate.set()
    assert (await child.result()).status is ShipmentStatus.DELIVERED
    assert parcels.batches[sid] == [1, 2]  # e1, then e2 and e3 (the redelivery dropped)
    assert parcels.ran(sid) == [BOOK, RECORD, RECORD, RECORD]
    assert statuses(await progress(parent)) == ["label_purchased", "in_transit", "delivered"]
    events = [e async for e in child.fetch_history_events()]
    kinds = [e.event_type for e in events]
    # The label is the one remote activity; the two record steps are markers.
    assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1
    markers = [e for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert [m.marker_recorded_event_attributes.marker_name for m in markers].count(
        "core_local_activity"
    ) == 2
    # Started by its parent with both attributes set: one upsert per status it reached
    # (the SDK's own, TemporalChangeVersion, marks each patch).
    upserted = [
        sorted(
            e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        )
        for e in events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    assert [u for u in upserted if u != ["TemporalChangeVersion"]] == [["ShipmentStatus"]] * 3
    attributes = (await child.describe()).typed_search_attributes
    assert attributes.get(SHIPMENT_STATUS) == "delivered"
    assert attributes.get(ORDER_ID) == f"ord_{sid}"


async def test_a_carrier_update_that_comes_with_the_start_is_recorded_after_the_label(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    sid = new_id()
    handle = await standalone(
        time_skipping_env, parcel(sid), CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT)
    )
    moving = await until(handle, lambda v: v.status is ShipmentStatus.IN_TRANSIT)
    assert moving.tracking_code == f"9400{sid}"
    assert parcels.ran(sid) == [BOOK, RECORD]
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    assert (await handle.result()).status is ShipmentStatus.DELIVERED
    assert parcels.ran(sid) == [BOOK, RECORD, RECORD]


async def test_a_retry_that_comes_with_the_start_does_not_skip_a_later_refusal(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """A retry_label before any label was refused asks nothing: when the carrier refuses
    the label, the parcel still waits for staff."""
    sid = new_id()
    parcels.refusals[sid] = 1
    handle = await standalone(time_skipping_env, parcel(sid), RETRY_LABEL_SIGNAL)
    stuck = await until(handle, lambda v: v.awaiting_retry)
    assert (stuck.status, stuck.problem) == (ShipmentStatus.PENDING, REFUSED)
    await time_skipping_env.sleep(timedelta(days=1))
    assert parcels.ran(sid) == [BOOK]
    await handle.signal(RETRY_LABEL_SIGNAL)
    await until(handle, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    assert parcels.ran(sid) == [BOOK, BOOK]
    await cancelled(time_skipping_env, handle)


async def test_a_redelivery_in_the_first_task_of_a_continued_run_is_dropped(
    time_skipping_env: WorkflowEnvironment, parcels: ShipmentStandIns
) -> None:
    """After continue-as-new a webhook redelivered at once reaches the new run in its
    first workflow task, before ``run`` restores the event ids carried over: it must be
    dropped as in any other task, not recorded again."""
    sid = new_id()
    carried = parcel(
        sid,
        status=ShipmentStatus.IN_TRANSIT,
        tracking_code=f"9400{sid}",
        seen_event_ids=["e0", "e1"],
    )
    handle = await standalone(
        time_skipping_env, carried, CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT)
    )
    await handle.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    assert (await handle.result()).status is ShipmentStatus.DELIVERED
    assert parcels.ran(sid) == [RECORD]
    [recorded] = parcels.inputs(sid, RECORD)
    assert recorded["tracker"]["status"] == str(DELIVERED)  # e2's, not e1's again
