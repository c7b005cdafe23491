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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.shipping import ShippingActivities
    from models.fulfillment import ShipmentStatus
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue
    from temporal.search_attributes import ORDER_ID, SHIPMENT_STATUS
    from workflows.types.fulfillment import (
        CARRIER_UPDATE_SIGNAL,
        RETRY_LABEL_SIGNAL,
        SHIPMENT_PROGRESS_SIGNAL,
        SHIPMENT_WORKFLOW,
        STATUS_QUERY,
        CarrierUpdate,
        ShipmentInput,
        ShipmentProgress,
    )
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
# Event ids a run hands to the next one: enough for any carrier's redeliveries (an older
# repeat is caught by the tracking history's unique ids and the forward-only status).
KEEP_SEEN = 1000
STEP_TIMEOUT = timedelta(seconds=60)
# Patch: the stall clock runs from the carrier's latest tracking entry, not from when the
# workflow recorded the update.
STALL_FROM_CARRIER_TIME = "stall-from-carrier-time"
# A silence already past when an update is recorded is flagged this long after it, unless
# more news comes: a carrier (or ``shop seed``) sending a parcel's past scans one after
# another must not have it flagged between two of them.
BACKFILL_GRACE = timedelta(seconds=10)
# Patch: the database steps (recording updates, flagging a stall) run as local activities,
# every update that arrived while the workflow was busy is recorded in one step and told
# to the parent once (an exception at once), and a search attribute is upserted only when
# its value changes. Parcels started before it keep one remote activity per update.
LOCAL_TRACKING_STEPS = "local-tracking-steps"
# Patch: a carrier update handled before ``run`` (a continued run's first workflow task,
# or signal-with-start) is checked against the event ids carried over, as any later one
# is. The handler runs before ``run`` restores them, so a webhook redelivered just after
# continue-as-new was recorded again (a step for nothing; the history and the status
# caught the repeat). Parcels started before it keep what their first task did.
EARLY_UPDATES_DEDUPED = "early-carrier-updates-deduped"
# Patch: cancelled, a parcel whose label the carrier would not void (scanned: the parcel
# is on its way; the compensation answers False) is kept tracked and the parent told (an
# exception: the fulfilment goes on hold for staff). Before, the run ended there with
# the parcel labelled and nobody following it (and, before the compensation stopped
# retrying a ``label_in_use`` refusal, the refund was tried forever).
CANCEL_REFUSED_KEEPS_TRACKING = "cancel-refused-keeps-tracking"
# Patch: the refusal is carried into the parcel's next run (continue-as-new), which
# answers a cancel as the first was answered (the parent told, the parcel still tracked,
# the carrier not asked again). Temporal delivers one cancel per run (a second request
# of the same run changes nothing): a second cancel reaches a kept parcel once its run
# has continued as new, and that run, knowing nothing of the refusal, ended there for a
# parcel on its way (no label left to refund), with nobody tracking it.
REPEATED_CANCEL_REFUSED = "repeated-cancel-refused"
# Patch: cancelled once the parcel is moving (in transit, out for delivery, an
# exception...), it is refused as a cancel the carrier refused is (the parent told, the
# parcel still tracked, the refusal carried over); the carrier is not asked: a moving
# parcel has no label to void. Before, the run ended there, the parcel on its way with
# nobody tracking it (no delivery recorded, no SLA, the order never delivered).
MOVING_PARCEL_CANCEL_REFUSED = "moving-parcel-cancel-refused"
CANCEL_REFUSED = "cancel refused: the carrier has scanned the label; still tracked"
# Patch: carrier updates whose recording a cancel interrupted go back to the pending ones,
# recorded once the cancel is answered if tracking goes on. Before, they were lost: the
# SDK runs a signal before a cancel of the same activation, so an update and a cancel
# arriving together started the update's step and then cancelled it, and a parcel whose
# cancel was refused waited for news it had already been sent (its delivery, at times).
CANCEL_KEEPS_UNRECORDED_UPDATES = "cancel-keeps-unrecorded-updates"
# Patch: the stall clock's patch is asked in the run's first workflow task, not when the
# first carrier update's local step answers. A local step's result can be recorded one
# workflow task before what the workflow did with it (a query answered while the step
# ends: the SDK core reports the step's marker with the answer and asks for a new task),
# and a replay hands the result back in the marker's task, before it knows of the next
# task's patch marker: ``patched`` answered False there and the replay failed on the
# marker ("Non-deprecated patch marker ... no corresponding change command"), a query of
# the closed parcel or a worker taking it up again after its cache dropped it. Parcels
# started before it ask where they did.
PATCHES_DECIDED_AT_START = "shipment-patches-decided-at-start"
# Provider and database hiccups are retried until they pass; our business errors
# (a refused label) are non-retryable and reach the workflow.
RETRY = RetryPolicy(
    maximum_attempts=0, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=SHIPMENT_WORKFLOW)
class ShipmentWorkflow:
    def __init__(self) -> None:
        self._input = ShipmentInput(shipment_id="", order_id="", fulfillment_id="")
        self._status = ShipmentStatus.PENDING
        self._delayed = False
        self._tracking_code: str | None = None
        self._tracking_url: str | None = None
        # When the carrier last scanned the parcel (its own time), or the label bought.
        self._last_update_at: datetime | None = None
        # Since the patch: the stall clock runs on the carrier's times.
        self._carrier_clock = False
        # STALL_FROM_CARRIER_TIME as decided in the first workflow task (since
        # PATCHES_DECIDED_AT_START); None: asked at the first update, as it was.
        self._stall_from_carrier_time: bool | None = None
        self._seen: list[str] = []
        self._seen_set: set[str] = set()
        self._pending: list[CarrierUpdate] = []
        self._problem: str | None = None
        self._retry_label = False
        self._awaiting_retry = False
        self._handled = 0
        self._local_steps = False
        # A cancel was refused (since REPEATED_CANCEL_REFUSED; carried over).
        self._cancel_refused = False

    # --- messages ---------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ShipmentView:
        return ShipmentView(
            shipment_id=self._input.shipment_id,
            order_id=self._input.order_id,
            status=self._status,
            delayed=self._delayed,
            tracking_code=self._tracking_code,
            tracking_url=self._tracking_url,
            last_update_at=self._last_update_at,
            problem=self._problem,
            awaiting_retry=self._awaiting_retry,
        )

    @workflow.signal(name=CARRIER_UPDATE_SIGNAL)
    def carrier_update(self, update: CarrierUpdate) -> None:
        """A verified carrier webhook; a redelivery (same event id) is dropped."""
        if update.event_id in self._seen_set:
            return
        self._remember(update.event_id)
        self._pending.append(update)

    @workflow.signal(name=RETRY_LABEL_SIGNAL)
    def retry_label(self) -> None:
        """Try the refused label again (staff corrected what the carrier refused)."""
        self._retry_label = True
        self._awaiting_retry = False

    # --- the parcel's life ------------------------------------------------------------

    @workflow.run
    async def run(self, input: ShipmentInput) -> ShipmentView:
        self._local_steps = workflow.patched(LOCAL_TRACKING_STEPS)
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

    # --- helpers ----------------------------------------------------------------------

    def _restore(self, input: ShipmentInput) -> None:
        """A fresh start, or the state the previous run carried over."""
        self._input = input
        self._status = input.status
        self._delayed = input.delayed
        self._tracking_code, self._tracking_url = input.tracking_code, input.tracking_url
        self._last_update_at = input.last_update_at
        self._cancel_refused = input.cancel_refused
        if self._cancel_refused:
            self._problem = CANCEL_REFUSED
        carried = set(input.seen_event_ids)
        # Signals handled before ``run`` (in the first workflow task) saw no carried ids.
        early = [event_id for event_id in self._seen if event_id not in carried]
        if len(early) < len(self._seen) and workflow.patched(EARLY_UPDATES_DEDUPED):
            self._pending = [u for u in self._pending if u.event_id not in carried]
            self._seen, self._seen_set = [], set()
            for event_id in [*input.seen_event_ids, *early]:
                self._remember(event_id)
            return
        for event_id in input.seen_event_ids:
            self._remember(event_id)

    def _carry_over(self) -> ShipmentInput:
        return self._input.model_copy(
            update={
                "status": self._status,
                "delayed": self._delayed,
                "tracking_code": self._tracking_code,
                "tracking_url": self._tracking_url,
                "last_update_at": self._last_update_at,
                "seen_event_ids": self._seen[-KEEP_SEEN:],
                "cancel_refused": self._cancel_refused,
            }
        )

    def _time_to_continue(self) -> bool:
        return (
            self._handled >= self._input.max_updates_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    def _quiet(self) -> timedelta | None:
        """How long until the parcel counts as stalled; None once it is flagged (the
        next update clears the flag and starts the clock again)."""
        if self._delayed:
            return None
        since = self._last_update_at or workflow.now()
        left = since + timedelta(hours=self._input.stall_hours) - workflow.now()
        return max(left, BACKFILL_GRACE if self._carrier_clock else timedelta(milliseconds=1))

    def _remember(self, event_id: str) -> None:
        self._seen.append(event_id)
        self._seen_set.add(event_id)

    def _mirror(self) -> None:
        """The query's and the search attributes' idea of the parcel."""
        details = f"{self._status}"
        if self._delayed:
            details += "; delayed"
        if self._tracking_code:
            details += f"; tracking {self._tracking_code}"
        if self._problem:
            details += f"; {self._problem}"
        workflow.set_current_details(details)
        attributes = [
            SHIPMENT_STATUS.value_set(str(self._status)),
            ORDER_ID.value_set(self._input.order_id),
        ]
        if self._local_steps:
            # Only what changed: each upsert is an event in the history. The parent
            # starts a parcel with both set.
            indexed = workflow.info().typed_search_attributes
            attributes = [a for a in attributes if indexed.get(a.key) != a.value]
        if attributes:
            workflow.upsert_search_attributes(attributes)

    async def _tell_parent(
        self, *, exception: bool = False, detail: str | None = None, cancel_refused: bool = False
    ) -> None:
        """Signal the fulfilment (started standalone, there is none to tell)."""
        parent = workflow.info().parent
        if parent is None:
            return
        progress = ShipmentProgress(
            shipment_id=self._input.shipment_id,
            status=self._status,
            delayed=self._delayed,
            exception=exception,
            detail=detail,
            cancel_refused=cancel_refused,
        )
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                SHIPMENT_PROGRESS_SIGNAL, progress
            )
        except FailureError as err:
            # The fulfilment has closed; the parcel's rows still say where it is.
            workflow.logger.warning("progress of %s not told: %s", progress.shipment_id, err)

    async def _step(
        self,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
        local: bool = False,
    ) -> Any:
        """Run one step; our business errors come out as their ``ApplicationError``.
        ``local``: a database step, run in this worker since ``LOCAL_TRACKING_STEPS``
        (no task queue round trip, one marker in the history; a crashed worker's
        workflow task is retried elsewhere and the step runs again, as it may)."""
        try:
            if local and self._local_steps:
                return await workflow.execute_local_activity_method(
                    activity,
                    arg,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=RETRY,
                    local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                    cancellation_type=cancellation,
                    summary=summary,
                )
            return await workflow.execute_activity_method(
                activity,
                arg,
                task_queue=str(TaskQueue.ORDERS),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=RETRY,
                cancellation_type=cancellation,
                summary=summary,
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError() from err
            if isinstance(err.cause, ApplicationError):
                raise err.cause from err
            raise
