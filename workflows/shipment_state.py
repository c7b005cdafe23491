"""``ShipmentWorkflow``'s state, and what reads it or tells it from outside: the
``status`` query, the ``carrier_update`` and ``retry_label`` signals, the parent told of
the parcel's progress, the state carried into the next run (continue-as-new), and the
parcel mirrored in the search attributes and in the UI's current details.

``ShipmentWorkflow`` (``workflows/shipments.py``) is this class with the parcel's life.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from models.fulfillment import ShipmentStatus
    from temporal.search_attributes import ORDER_ID, SHIPMENT_STATUS
    from workflows.shipment_patches import (
        EARLY_UPDATES_DEDUPED,
        RETRY_LABEL_ONCE_PER_CORRECTION,
    )
    from workflows.shipment_steps import run_step
    from workflows.types.fulfillment import (
        CARRIER_UPDATE_SIGNAL,
        RETRY_LABEL_SIGNAL,
        SHIPMENT_PROGRESS_SIGNAL,
        STATUS_QUERY,
        CarrierUpdate,
        RetryLabel,
        ShipmentInput,
        ShipmentProgress,
    )
    from workflows.types.shipments import ShipmentView

# Event ids a run hands to the next one: enough for any carrier's redeliveries (an older
# repeat is caught by the tracking history's unique ids and the forward-only status).
KEEP_SEEN = 1000
# A silence already past when an update is recorded is flagged this long after it, unless
# more news comes: a carrier (or ``shop seed``) sending a parcel's past scans one after
# another must not have it flagged between two of them.
BACKFILL_GRACE = timedelta(seconds=10)
# The parcel's problem once a cancel is refused (the query and the UI show it).
CANCEL_REFUSED = "cancel refused: the carrier has scanned the label; still tracked"


class ShipmentState:
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
        # The corrections whose ``retry_label`` was acted on (a label is booked only
        # while the parcel has none, so they need not outlive the run).
        self._corrections: set[str] = set()
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
    def retry_label(self, retry: RetryLabel | None = None) -> None:
        """Try the refused label again (staff corrected what the carrier refused). A
        correction acted on already (the relay sent its signal again after an answer was
        lost) is dropped: a label is bought once per correction, in runs started since
        ``RETRY_LABEL_ONCE_PER_CORRECTION`` (``run`` asks it in the first task; a handler
        run before ``run`` in that task asks it first). Older runs act on every signal,
        as a worker of the release before does; so do all on a signal without one (owed
        before corrections were named)."""
        if retry is not None and workflow.patched(RETRY_LABEL_ONCE_PER_CORRECTION):
            if retry.correction_id in self._corrections:
                return
            self._corrections.add(retry.correction_id)
        self._retry_label = True
        self._awaiting_retry = False

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
        """``local``: a database step, run in this worker since ``LOCAL_TRACKING_STEPS``
        (no task queue round trip, one marker in the history; a crashed worker's
        workflow task is retried elsewhere and the step runs again, as it may)."""
        return await run_step(
            activity, arg, summary, cancellation=cancellation, local=local and self._local_steps
        )
