"""``FulfillmentWorkflow``: one per order, from ``fulfillment.order_ready`` to the last
parcel delivered (or the fulfilment cancelled).

It opens the fulfilment order, then is the single writer of it: staff's actions arrive
as Updates (``create_shipment``, ``hold``, ``release``, ``cancel``), each validated
against the workflow's state and then carried out by an activity, the authority. Each
shipment gets a ``ShipmentWorkflow`` child (by name; ``ABANDON``, so a parcel is tracked
to the door whatever happens here) that signals its progress back; a carrier exception
puts the fulfilment on hold. A cancel before any label cancels the pending parcels and
runs the order's own compensations: stock back, payment refunded, order ``cancelled``,
customer emailed; once accepted, each of its steps is tried until it answers.

This module is staff's Updates and the run; the state they share, the status query and
the parcels' signal are ``workflows/fulfillment_state.py``, how a step runs and the
order's undoing ``workflows/fulfillment_steps.py``, and the patches its runs ask
``workflows/fulfillment_patches.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.fulfillment import FulfillmentActivities
    from core.ids import IdPrefix, id_from
    from models.fulfillment import FulfillmentStatus, ShipmentStatus
    from services.fulfillment.status import shipment_can_move
    from temporal.queues import TaskQueue
    from temporal.search_attributes import ORDER_ID, SHIPMENT_STATUS
    from workflows.fulfillment_parcels import (
        as_refusal,
        refuse_closed_or_held,
        refuse_labelled,
        refuse_parcel,
        refused,
    )
    from workflows.fulfillment_patches import (
        CANCEL_UNTIL_ANSWERED,
        HANDLERS_FINISH_WHEN_CANCELLED,
        LOCAL_FULFILLMENT_STEPS,
        PARCEL_ID_FROM_UPDATE,
        PATCHES_DECIDED_AT_START,
        RESET_READS_THE_DATABASE,
        UPDATES_WAIT_FOR_OPEN,
    )
    from workflows.fulfillment_state import FulfillmentState
    from workflows.fulfillment_steps import undo_order
    from workflows.types.fulfillment import (
        FULFILLMENT_WORKFLOW,
        SHIPMENT_WORKFLOW,
        ShipmentInput,
        shipment_workflow_id,
    )
    from workflows.types.fulfillment_orders import (
        CancelFulfillmentRequest,
        FulfillmentCancelInput,
        FulfillmentCancelled,
        FulfillmentChange,
        FulfillmentHoldInput,
        FulfillmentInput,
        FulfillmentOpened,
        FulfillmentRef,
        FulfillmentView,
        HoldRequest,
        NewShipment,
        ShipmentCreated,
        ShipmentRequest,
        ShipmentState,
    )


# Unsandboxed, as the event workflows are: every order runs this workflow, and building
# its sandbox was about 10 ms of worker CPU per run (recorded histories replayed: 23-30
# ms sandboxed, 13-22 unsandboxed, issue #15). Its module uses neither the clock nor
# randomness nor the OS (tests/temporal/test_sandbox.py reads it), and what it imports
# is passed through the sandbox all the same.
@workflow.defn(name=FULFILLMENT_WORKFLOW, sandboxed=False)
class FulfillmentWorkflow(FulfillmentState):
    # --- staff's Updates ----------------------------------------------------------------

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[FulfillmentOpened]:
        """An Update's turn: once the fulfilment order is open, alone (holding the lock),
        in the order the Updates came."""
        if workflow.patched(UPDATES_WAIT_FOR_OPEN):
            await self._wait_opened()  # outside the lock: ``run`` opens holding it
        async with self._lock:
            yield await self._wait_opened()

    # Updates are named by their methods (typed callers keep the result types); the
    # names are CREATE_SHIPMENT_UPDATE, HOLD_UPDATE, RELEASE_UPDATE, CANCEL_FULFILLMENT_UPDATE.
    @workflow.update
    async def create_shipment(self, request: ShipmentRequest) -> ShipmentCreated:
        async with self._turn() as opened:
            refuse_closed_or_held(self._status, self._hold_reason)
            shipment_id = self._parcel_id()
            try:
                created: ShipmentCreated = await self._step(
                    FulfillmentActivities.create_shipment,
                    NewShipment(
                        fulfillment_id=opened.fulfillment_id,
                        shipment_id=shipment_id,
                        lines=request.lines,
                        weight_oz=request.weight_oz,
                    ),
                    f"create shipment {shipment_id}",
                    local=True,
                )
            except ActivityError as err:
                raise as_refusal(err) from err
            self._shipments[created.shipment_id] = ShipmentState(
                shipment_id=created.shipment_id, status=created.status, lines=created.lines
            )
            self._derive()
            await self._start_parcel(opened, created.shipment_id)
            return created

    @create_shipment.validator
    def _validate_create_shipment(self, request: ShipmentRequest) -> None:
        refuse_closed_or_held(self._status, self._hold_reason)
        if self._opened is not None:  # else the handler waits; its activity judges
            refuse_parcel(self._opened.lines, self._shipments.values(), request.lines)

    @workflow.update
    async def hold(self, request: HoldRequest) -> FulfillmentView:
        async with self._turn():
            try:
                await self._hold(request.reason)
            except ActivityError as err:
                raise as_refusal(err) from err
            return self.status()

    @hold.validator
    def _validate_hold(self, request: HoldRequest) -> None:
        if not request.reason.strip():
            raise refused("validation_error", "a hold needs a reason")
        if self._status in (FulfillmentStatus.CANCELLED, FulfillmentStatus.DELIVERED):
            raise refused("fulfillment_closed", f"the fulfilment order is {self._status}")

    @workflow.update
    async def release(self) -> FulfillmentView:
        async with self._turn() as opened:
            try:
                change: FulfillmentChange = await self._step(
                    FulfillmentActivities.release,
                    FulfillmentRef(fulfillment_id=opened.fulfillment_id),
                    "release the hold",
                    local=True,
                )
            except ActivityError as err:
                raise as_refusal(err) from err
            self._hold_reason = None
            self._mirror(change.status)
            return self.status()

    @release.validator
    def _validate_release(self) -> None:
        if self._hold_reason is None:
            raise refused("fulfillment_not_on_hold", "the fulfilment order is not on hold")

    @workflow.update
    async def cancel(self, request: CancelFulfillmentRequest) -> FulfillmentView:
        async with self._turn() as opened:
            if self._status is FulfillmentStatus.CANCELLED:
                return self.status()  # asked again: it is done
            refuse_labelled(self._shipments.values())
            try:
                cancelled: FulfillmentCancelled = await self._step(
                    FulfillmentActivities.cancel,
                    FulfillmentCancelInput(
                        fulfillment_id=opened.fulfillment_id, reason=request.reason
                    ),
                    "cancel the pending parcels and the fulfilment order",
                    forever=self._since(CANCEL_UNTIL_ANSWERED),
                    local=True,
                )
            except ActivityError as err:
                raise as_refusal(err) from err
            for shipment_id in cancelled.cancelled_shipments:
                if shipment_id in self._shipments:
                    self._shipments[shipment_id].status = ShipmentStatus.CANCELLED
                child = self._children.get(shipment_id)
                if child is not None and shipment_id in self._running:
                    child.cancel()
            self._mirror(FulfillmentStatus.CANCELLED)
            await undo_order(opened, request.reason)
            return self.status()

    @cancel.validator
    def _validate_cancel(self, request: CancelFulfillmentRequest) -> None:
        if self._status is FulfillmentStatus.CANCELLED:
            return  # harmless
        refuse_labelled(self._shipments.values())

    # --- the run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: FulfillmentInput) -> FulfillmentView:
        # First, so that one run keeps one shape (the SDK remembers the answer).
        self._local_steps = workflow.patched(LOCAL_FULFILLMENT_STEPS)
        self._patches_at_start = workflow.patched(PATCHES_DECIDED_AT_START)
        self._reset_reads = workflow.patched(RESET_READS_THE_DATABASE)
        if self._reset_reads:
            # From the reset point, the run reads its fulfilment again (``_run``).
            self._resets.start()
        self._input = input
        try:
            return await self._run(input)
        except asyncio.CancelledError:
            if self._since(HANDLERS_FINISH_WHEN_CANCELLED):
                # Temporal delivers its cancel once: this wait is not cancelled.
                await workflow.wait_condition(workflow.all_handlers_finished)
            raise

    async def _run(self, input: FulfillmentInput) -> FulfillmentView:
        async with self._lock:
            opened: FulfillmentOpened = await self._step(
                FulfillmentActivities.open,
                input,
                "open the fulfilment order",
                forever=True,
                local=True,
            )
            self._opened = opened
            if self._reset_reads:
                await self._take_stored(opened)
            else:
                self._mirror(opened.status)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._exceptions) or self._finished() or self._resets.seen
            )
            if self._resets.take():
                async with self._lock:
                    await self._take_stored(
                        await self._step(
                            FulfillmentActivities.open,
                            input,
                            "reset: read the fulfilment order again",
                            forever=True,
                            local=True,
                        )
                    )
            while self._exceptions:
                news, key = self._exceptions.pop(0), self._exception_keys.pop(0)
                reason = f"shipment {news.shipment_id}: {news.status}"
                if news.detail:
                    reason += f" ({news.detail})"
                async with self._lock:
                    # Keyed since RESET_READS_THE_DATABASE: an exception a reset run is
                    # told again holds it no second time (staff released that hold).
                    await self._hold(reason, forever=True, key=key if self._reset_reads else None)
            if self._finished():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    # --- a reset run -----------------------------------------------------------------------

    async def _take_stored(self, opened: FulfillmentOpened) -> None:
        """The fulfilment as the database holds it (``open`` answered it again: a run
        reset to before what its earlier run did): parcels this run does not know are
        taken as stored (their workflows run on their own and tell this one by id), a
        known one moves forward to its stored status, the hold is the stored one. A
        fulfilment cancelled where this run does not know it has its order's undoing
        finished (every step of it answers a repeat as the first: nothing twice)."""
        for stored in opened.shipments:
            known = self._shipments.get(stored.shipment_id)
            if known is None:
                self._shipments[stored.shipment_id] = stored
            elif shipment_can_move(known.status, stored.status):
                known.status = stored.status
        self._hold_reason = opened.hold_reason
        if opened.status is FulfillmentStatus.CANCELLED:
            if self._status is not FulfillmentStatus.CANCELLED:
                self._mirror(FulfillmentStatus.CANCELLED)
                await undo_order(opened, None)
            return
        self._derive()

    # --- steps ----------------------------------------------------------------------------

    async def _hold(self, reason: str, *, forever: bool = False, key: str | None = None) -> None:
        opened = await self._wait_opened()
        change: FulfillmentChange = await self._step(
            FulfillmentActivities.hold,
            FulfillmentHoldInput(fulfillment_id=opened.fulfillment_id, reason=reason, key=key),
            "put the fulfilment on hold",
            forever=forever,
            local=True,
        )
        if change.changed:
            self._hold_reason = reason
        self._mirror(change.status)

    async def _start_parcel(self, opened: FulfillmentOpened, shipment_id: str) -> None:
        try:
            handle = await self._start_child(opened, shipment_id)
        except WorkflowAlreadyStartedError:
            if not self._reset_reads:
                raise
            # A reset run names a parcel its earlier run started: that workflow follows
            # it (running or ended) and tells this one by id; one parcel, one workflow.
            workflow.logger.info("parcel %s has its workflow already", shipment_id)
            return
        self._children[shipment_id] = handle
        self._running.add(shipment_id)
        self._watchers[shipment_id] = asyncio.create_task(self._watch(shipment_id, handle))

    async def _start_child(
        self, opened: FulfillmentOpened, shipment_id: str
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        return await workflow.start_child_workflow(
            SHIPMENT_WORKFLOW,
            ShipmentInput(
                shipment_id=shipment_id,
                order_id=opened.order_id,
                fulfillment_id=opened.fulfillment_id,
                stall_hours=self._input.stall_hours,
            ),
            id=shipment_workflow_id(shipment_id),
            task_queue=str(TaskQueue.ORDERS),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            # Indexed from its first event: the parcel need not upsert them itself.
            search_attributes=(
                TypedSearchAttributes(
                    [
                        SearchAttributePair(SHIPMENT_STATUS, str(ShipmentStatus.PENDING)),
                        SearchAttributePair(ORDER_ID, opened.order_id),
                    ]
                )
                if self._local_steps
                else None
            ),
            # Since RESET_READS_THE_DATABASE a parcel's workflow never runs twice (the
            # SDK's default lets a closed one run again).
            id_reuse_policy=(
                WorkflowIDReusePolicy.REJECT_DUPLICATE
                if self._reset_reads
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE
            ),
        )

    async def _watch(
        self, shipment_id: str, handle: workflow.ChildWorkflowHandle[Any, Any]
    ) -> None:
        try:
            await handle
        except (Exception, asyncio.CancelledError) as err:
            # A failed or cancelled parcel has ended all the same.
            workflow.logger.info("parcel %s ended: %r", shipment_id, err)
        finally:
            self._running.discard(shipment_id)

    def _parcel_id(self) -> str:
        """The id a ``create_shipment`` Update names its parcel by: the same in every
        attempt of the workflow task that runs it (see ``PARCEL_ID_FROM_UPDATE``)."""
        update = workflow.current_update_info()
        if update is None or not self._since(PARCEL_ID_FROM_UPDATE):
            return id_from(
                IdPrefix.SHIPMENT,
                int(workflow.now().timestamp() * 1000),
                workflow.random().getrandbits(80),
            )
        key = hashlib.sha256(f"{workflow.info().workflow_id}/{update.id}".encode()).digest()
        info = workflow.info()
        # The workflow's start, which a reset keeps (since RESET_READS_THE_DATABASE); the
        # start of its first workflow task is the reset run's own.
        started = info.workflow_start_time if self._reset_reads else info.start_time
        return id_from(
            IdPrefix.SHIPMENT,
            int(started.timestamp() * 1000),
            int.from_bytes(key[:10], "big"),
        )
