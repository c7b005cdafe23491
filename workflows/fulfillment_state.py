"""``FulfillmentWorkflow``'s state, and what reads it or tells it from outside: the
``status`` query, a parcel's ``shipment_progress`` signal, the fulfilment's status derived
from its parcels and mirrored in the search attributes and in the UI's current details.

``FulfillmentWorkflow`` (``workflows/fulfillment.py``) is this class with staff's
Updates and the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.fulfillment import FulfillmentStatus, ShipmentStatus
    from services.fulfillment.status import shipment_can_move
    from temporal.search_attributes import CUSTOMER_ID, FULFILLMENT_STATUS, ORDER_ID
    from workflows.fulfillment_parcels import parcels_status
    from workflows.fulfillment_steps import run_step
    from workflows.resets import ResetWatch
    from workflows.types.fulfillment import SHIPMENT_PROGRESS_SIGNAL, STATUS_QUERY, ShipmentProgress
    from workflows.types.fulfillment_orders import (
        FulfillmentInput,
        FulfillmentOpened,
        FulfillmentView,
        ShipmentState,
    )


class FulfillmentState:
    def __init__(self) -> None:
        self._input = FulfillmentInput(order_id="")
        self._opened: FulfillmentOpened | None = None
        self._status: FulfillmentStatus | None = None
        self._hold_reason: str | None = None
        self._shipments: dict[str, ShipmentState] = {}
        self._running: set[str] = set()  # children not finished
        self._children: dict[str, workflow.ChildWorkflowHandle[Any, Any]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._exceptions: list[ShipmentProgress] = []
        # Per parcel, the exceptions it told; the hold key of each exception waiting.
        self._exceptions_told: dict[str, int] = {}
        self._exception_keys: list[str] = []
        # Updates and holds run one at a time, in the order they come.
        self._lock = asyncio.Lock()
        self._local_steps = False
        self._patches_at_start = False  # PATCHES_DECIDED_AT_START
        self._reset_reads = False  # RESET_READS_THE_DATABASE
        # Temporal reset this run: read the fulfilment again.
        self._resets = ResetWatch()

    # --- queries and signals ------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> FulfillmentView:
        return FulfillmentView(
            order_id=self._input.order_id,
            fulfillment_id=self._opened.fulfillment_id if self._opened else None,
            status=self._status,
            hold_reason=self._hold_reason,
            shipments=list(self._shipments.values()),
        )

    @workflow.signal(name=SHIPMENT_PROGRESS_SIGNAL)
    def shipment_progress(self, progress: ShipmentProgress) -> None:
        """A child parcel's news. Late or repeated news never moves a parcel back."""
        shipment = self._shipments.get(progress.shipment_id)
        if shipment is None:
            return
        shipment.delayed = progress.delayed
        moved = shipment_can_move(shipment.status, progress.status)
        if moved:
            shipment.status = progress.status
        # A label the carrier refused leaves the parcel pending, and a cancel the carrier
        # refused (it scanned the label) leaves it labelled: exceptions all the same (no
        # parcel told either before them, so histories replay as they ran).
        if progress.exception and (
            moved or progress.status is ShipmentStatus.PENDING or progress.cancel_refused
        ):
            self._exceptions.append(progress)
            told = self._exceptions_told.get(progress.shipment_id, 0) + 1
            self._exceptions_told[progress.shipment_id] = told
            # Its hold's key: the same for the same exception told again to a reset run
            # (the signals before the reset point replayed, those after it sent again).
            self._exception_keys.append(f"hold:{progress.shipment_id}:{told}")
        self._derive()

    # --- the state as the run and the Updates see it ------------------------------------

    async def _step(
        self,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        forever: bool = False,
        local: bool = False,
    ) -> Any:
        """``local``: a database step of this workflow's own, run in this worker since
        ``LOCAL_FULFILLMENT_STEPS`` (each is one transaction, safe to repeat)."""
        return await run_step(
            activity, arg, summary, forever=forever, local=local and self._local_steps
        )

    def _since(self, patch: str) -> bool:
        """Whether this run takes ``patch``'s new code: yes since PATCHES_DECIDED_AT_START
        (``run`` asks it before any Update's turn can come); runs started before ask
        where they did."""
        return self._patches_at_start or workflow.patched(patch)

    async def _wait_opened(self) -> FulfillmentOpened:
        await workflow.wait_condition(lambda: self._opened is not None)
        assert self._opened is not None
        return self._opened

    def _derive(self) -> None:
        """Mirror the fulfilment's status from the parcels (the database has the same
        rule in ``services.fulfillment.status``; this copy feeds the query and the
        search attribute)."""
        if self._opened is None or self._status is FulfillmentStatus.CANCELLED:
            return
        self._mirror(parcels_status(self._opened.lines, list(self._shipments.values())))

    def _finished(self) -> bool:
        """Delivered or cancelled, and every parcel's workflow has ended."""
        if self._status not in (FulfillmentStatus.DELIVERED, FulfillmentStatus.CANCELLED):
            return False
        return not self._running and not self._exceptions

    def _mirror(self, status: FulfillmentStatus) -> None:
        if self._hold_reason is not None and status is not FulfillmentStatus.CANCELLED:
            status = FulfillmentStatus.ON_HOLD
        self._status = status
        opened = self._opened
        workflow.set_current_details(f"fulfilment {status}; {len(self._shipments)} parcel(s)")
        attributes = [
            FULFILLMENT_STATUS.value_set(str(status)),
            ORDER_ID.value_set(self._input.order_id),
        ]
        if opened is not None:
            attributes.append(CUSTOMER_ID.value_set(opened.user_id))
        if self._local_steps:
            # Only what changed: each upsert is an event, and parcels' news often
            # leaves the fulfilment's status as it was.
            indexed = workflow.info().typed_search_attributes
            attributes = [a for a in attributes if indexed.get(a.key) != a.value]
        if attributes:
            workflow.upsert_search_attributes(attributes)
