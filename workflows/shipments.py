"""``ShipmentWorkflow``: one parcel, from its label to the customer's door.

Started by its ``FulfillmentWorkflow`` as a child (``shipment_workflow_id``, queue
``orders``). It books the label (once, however often it is retried), then waits for the
carrier's updates, which the webhook passes on as ``carrier_update`` signals (a
redelivered event id is dropped here; the tracking history dedupes its entries too).
Each update is recorded (history appended, status forward only), and every status change
is told to the parent (``shipment_progress``; ``failure`` and ``return_to_sender`` as
exceptions, which put the fulfilment on hold). A parcel with no carrier scan for
``stall_hours`` (counted from the carrier's time of its latest tracking entry, so a
silence already that long is flagged at once, after ``BACKFILL_GRACE``) is flagged
delayed once per silence (staff are alerted through ``shipment.delayed``) and still
waited for. It ends at ``delivered``, ``return_to_sender`` or ``cancelled``, and
continues as new when its history grows long.

A refused label (a bad address) is an exception for the parent too; the workflow waits
for ``retry_label`` (staff fixed it) or its cancellation. Cancelled after the label was
bought but before the parcel moved, it refunds the label; if the carrier refuses the
void (it has scanned the label: the parcel is on its way) the parcel stays labelled, the
parent hears of it as an exception (the fulfilment goes on hold for staff) and the
workflow keeps tracking it to the door; the refusal is carried into later runs, which
answer a cancel the same way. A parcel cancelled once it is moving is refused the same
way, the carrier not asked. Carrier updates whose recording the cancel interrupted are
recorded once it is answered.

This module is the parcel's life; its state, the messages that read or change it and
what it tells its parent are ``workflows/shipment_state.py``, how a step runs
``workflows/shipment_steps.py``, and the patches its runs ask
``workflows/shipment_patches.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.shipping import ShippingActivities
    from models.fulfillment import ShipmentStatus
    from temporal.queues import TaskQueue
    from workflows.shipment_patches import (
        CANCEL_KEEPS_UNRECORDED_UPDATES,
        CANCEL_REFUSED_KEEPS_TRACKING,
        LOCAL_TRACKING_STEPS,
        MOVING_PARCEL_CANCEL_REFUSED,
        PATCHES_DECIDED_AT_START,
        REPEATED_CANCEL_REFUSED,
        RETRY_LABEL_ONCE_PER_CORRECTION,
        STALL_FROM_CARRIER_TIME,
    )
    from workflows.shipment_state import CANCEL_REFUSED, ShipmentState
    from workflows.shipment_steps import RETRY, STEP_TIMEOUT
    from workflows.types.fulfillment import SHIPMENT_WORKFLOW, CarrierUpdate, ShipmentInput
    from workflows.types.shipments import (
        BookedLabel,
        MarkDelayedInput,
        RecordedUpdate,
        RecordedUpdates,
        RecordUpdateInput,
        RecordUpdatesInput,
        ShipmentRef,
        ShipmentView,
    )

FINAL = frozenset(
    {ShipmentStatus.DELIVERED, ShipmentStatus.RETURN_TO_SENDER, ShipmentStatus.CANCELLED}
)
EXCEPTIONS = frozenset({ShipmentStatus.FAILURE, ShipmentStatus.RETURN_TO_SENDER})


@workflow.defn(name=SHIPMENT_WORKFLOW)
class ShipmentWorkflow(ShipmentState):
    # --- the parcel's life ------------------------------------------------------------

    @workflow.run
    async def run(self, input: ShipmentInput) -> ShipmentView:
        self._local_steps = workflow.patched(LOCAL_TRACKING_STEPS)
        # Decided here, in the first task; retry_label asks it again (the SDK's answer).
        workflow.patched(RETRY_LABEL_ONCE_PER_CORRECTION)
        if workflow.patched(PATCHES_DECIDED_AT_START):
            self._stall_from_carrier_time = workflow.patched(STALL_FROM_CARRIER_TIME)
        self._restore(input)
        self._mirror()
        try:
            if self._status is ShipmentStatus.PENDING:
                await self._book()
            await self._track()
        except asyncio.CancelledError:
            if await self._undo():
                # Temporal delivers one cancel per run; a later run's is answered by
                # _undo as this one was (since REPEATED_CANCEL_REFUSED).
                await self._track()
        return self.status()

    async def _book(self) -> None:
        ref = ShipmentRef(shipment_id=self._input.shipment_id)
        while True:
            try:
                booked: BookedLabel = await self._step(
                    ShippingActivities.book_label,
                    ref,
                    "book-label: buy the parcel's label",
                    # A cancel waits for a running attempt, so the refund sees its label.
                    cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            except ApplicationError as refused:
                if refused.type == "shipment_cancelled":
                    self._status = ShipmentStatus.CANCELLED
                    self._mirror()
                    return
                if refused.type != "shipping_rejected":
                    raise
                await self._await_retry(refused.message)
                continue
            self._problem = None
            self._tracking_code, self._tracking_url = booked.tracking_code, booked.tracking_url
            self._last_update_at = workflow.now()
            await self._moved_to(booked.status)
            return

    async def _await_retry(self, problem: str) -> None:
        """The carrier refused the label: the fulfilment goes on hold until staff act."""
        self._problem = problem
        self._retry_label = False
        self._mirror()
        await self._tell_parent(exception=True, detail=f"label refused: {problem}")
        self._awaiting_retry = not self._retry_label
        await workflow.wait_condition(lambda: self._retry_label)

    async def _track(self) -> None:
        while self._status not in FINAL:
            if not self._pending and self._time_to_continue():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry_over())
            try:
                await workflow.wait_condition(lambda: bool(self._pending), timeout=self._quiet())
            except TimeoutError:
                await self._flag_delayed()
                continue
            if self._local_steps:
                batch, self._pending = self._pending, []
                await self._record_all(batch)
            else:
                await self._record(self._pending.pop(0))

    async def _recorded(self, updates: list[CarrierUpdate], step: Awaitable[Any]) -> Any:
        """The step recording ``updates``; cancelled before they were recorded, they are
        pending again (since ``CANCEL_KEEPS_UNRECORDED_UPDATES``), for the tracking that
        goes on after the cancel is answered (the step is idempotent, run again or not)."""
        try:
            return await step
        except asyncio.CancelledError:
            if workflow.patched(CANCEL_KEEPS_UNRECORDED_UPDATES):
                self._pending[:0] = updates
            raise

    async def _record(self, update: CarrierUpdate) -> None:
        recorded: RecordedUpdate = await self._recorded(
            [update],
            self._step(
                ShippingActivities.record_update,
                RecordUpdateInput(shipment_id=self._input.shipment_id, tracker=update.tracker),
                f"record-update: carrier says {update.tracker.status}",
            ),
        )
        was_status, was_delayed = self._status, self._delayed
        self._take(update, recorded)
        if self._status != was_status:
            self._mirror()
            await self._tell_parent(exception=self._status in EXCEPTIONS, detail=recorded.detail)
        elif was_delayed and not self._delayed:
            self._mirror()
            await self._tell_parent()  # moving again: no longer delayed

    async def _record_all(self, batch: list[CarrierUpdate]) -> None:
        """The updates that waited, recorded in one local step. The parent hears of an
        exception at once and of the rest once, where the batch left the parcel."""
        recorded: RecordedUpdates = await self._recorded(
            batch,
            self._step(
                ShippingActivities.record_updates,
                RecordUpdatesInput(
                    shipment_id=self._input.shipment_id, trackers=[u.tracker for u in batch]
                ),
                f"record-updates: carrier says {', '.join(str(u.tracker.status) for u in batch)}",
                local=True,
            ),
        )
        told = (self._status, self._delayed)
        detail: str | None = None
        for update, one in zip(batch, recorded.updates, strict=True):
            was_status = self._status
            self._take(update, one)
            if self._status != was_status:
                detail = one.detail
                if self._status in EXCEPTIONS:
                    self._mirror()
                    await self._tell_parent(exception=True, detail=detail)
                    told, detail = (self._status, self._delayed), None
        if (self._status, self._delayed) != told:
            self._mirror()
            await self._tell_parent(detail=detail)

    def _take(self, update: CarrierUpdate, recorded: RecordedUpdate) -> None:
        """The parcel's state after one recorded update (telling is the caller's)."""
        self._handled += 1
        heard_at, quiet_since = self._heard_at(recorded), self._last_update_at
        # On the carrier's clock, an update with no newer scan (a late, out-of-order
        # webhook) does not end the silence: the parcel stays flagged, alerted once.
        still_quiet = (
            self._delayed
            and self._carrier_clock
            and quiet_since is not None
            and heard_at <= quiet_since
        )
        self._last_update_at = quiet_since if still_quiet else heard_at
        self._tracking_code = self._tracking_code or update.tracker.tracking_code
        self._delayed = self._delayed and still_quiet
        self._status = recorded.status

    def _heard_at(self, recorded: RecordedUpdate) -> datetime:
        """Where the stall clock starts after an update: the carrier's time of the
        parcel's latest tracking entry (a parcel whose carrier went quiet days ago, as
        ``shop seed`` writes, is late already), never later than now. Histories from
        before the patch counted from when the workflow heard it."""
        from_carrier_time = self._stall_from_carrier_time
        if from_carrier_time is None:
            from_carrier_time = workflow.patched(STALL_FROM_CARRIER_TIME)
        if not from_carrier_time:
            return workflow.now()
        self._carrier_clock = True
        if recorded.last_event_at is None:
            return workflow.now()
        return min(recorded.last_event_at, workflow.now())

    async def _flag_delayed(self) -> None:
        quiet_since = self._last_update_at or workflow.now()
        await self._step(
            ShippingActivities.mark_delayed,
            MarkDelayedInput(
                shipment_id=self._input.shipment_id,
                stall_hours=self._input.stall_hours,
                quiet_since=quiet_since,
            ),
            f"mark-delayed: no carrier update for {self._input.stall_hours:g} h",
            local=True,
        )
        self._delayed = True
        self._mirror()
        await self._tell_parent(detail=f"no carrier update since {quiet_since:%F %T} UTC")

    async def _moved_to(self, status: ShipmentStatus, detail: str | None = None) -> None:
        self._status = status
        self._mirror()
        await self._tell_parent(exception=status in EXCEPTIONS, detail=detail)

    async def _undo(self) -> bool:
        """Cancelled: a label bought for a parcel that never moved is refunded. True if
        the carrier has the parcel all the same (the refund was refused, now or in an
        earlier run, or the parcel is moving already): tracking goes on."""
        if self._cancel_refused:
            await self._refuse_cancel()
            return True
        if self._status not in (ShipmentStatus.PENDING, ShipmentStatus.LABEL_PURCHASED):
            if self._status in FINAL or not workflow.patched(MOVING_PARCEL_CANCEL_REFUSED):
                return False
            # Moving: nothing to void, so the carrier is not asked.
            self._cancel_refused = True
            await self._refuse_cancel()
            return True
        refunded = await workflow.execute_activity_method(
            ShippingActivities.refund_label,
            ShipmentRef(shipment_id=self._input.shipment_id),
            task_queue=str(TaskQueue.ORDERS),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=RETRY,
            summary="compensate: refund the unused label",
        )
        if refunded or self._status is ShipmentStatus.PENDING:
            self._status = ShipmentStatus.CANCELLED
            self._mirror()
            await self._tell_parent()
            return False
        if not workflow.patched(CANCEL_REFUSED_KEEPS_TRACKING):
            return False
        self._cancel_refused = workflow.patched(REPEATED_CANCEL_REFUSED)
        await self._refuse_cancel()
        return True

    async def _refuse_cancel(self) -> None:
        """The carrier keeps the parcel, and so does this workflow (tracking it); the
        fulfilment hears of it as an exception (it goes on hold for staff)."""
        self._problem = CANCEL_REFUSED
        self._mirror()
        await self._tell_parent(exception=True, detail=self._problem, cancel_refused=True)
