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
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.email import (
        NOTIFICATION_RETRY,
        NOTIFICATION_SCHEDULE_TO_CLOSE,
        NOTIFICATION_START_TO_CLOSE,
        EmailActivities,
        SendEmailInput,
    )
    from activities.fulfillment import FulfillmentActivities
    from activities.orders import OrderActivities
    from activities.payments import PaymentActivities
    from core.ids import IdPrefix, id_from
    from models.fulfillment import FulfillmentStatus, ShipmentStatus
    from models.orders import OrderStatus
    from services.fulfillment.status import shipment_can_move
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue
    from temporal.search_attributes import (
        CUSTOMER_ID,
        FULFILLMENT_STATUS,
        ORDER_ID,
        SHIPMENT_STATUS,
    )
    from workflows.fulfillment_parcels import (
        as_refusal,
        parcels_status,
        refuse_closed_or_held,
        refuse_labelled,
        refuse_parcel,
        refused,
    )
    from workflows.types.fulfillment import (
        FULFILLMENT_WORKFLOW,
        SHIPMENT_PROGRESS_SIGNAL,
        SHIPMENT_WORKFLOW,
        STATUS_QUERY,
        ShipmentInput,
        ShipmentProgress,
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
    from workflows.types.orders import CloseInput, OrderRef

STEP_TIMEOUT = timedelta(seconds=30)
# Staff wait on an Update: a step retries a few times, then the Update answers.
STAFF_STEP_RETRY = RetryPolicy(
    maximum_attempts=5, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5)
)
# What cannot be given up (opening the fulfilment, a compensation) retries until it works.
FOREVER = RetryPolicy(
    maximum_attempts=0, initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# Patch: the fulfilment's own database steps (open, create a shipment, hold, release,
# cancel) run as local activities, a search attribute is upserted only when its value
# changes, and a parcel's workflow starts with its search attributes set. Fulfilments
# started before it keep their remote steps and upserts.
LOCAL_FULFILLMENT_STEPS = "local-fulfillment-steps"
# Since this patch an Update waits for the fulfilment order to be open before it takes
# the lock. Before it, an Update that came with the start (in the first workflow task)
# ran first, took the lock and waited for the opening, which ``run`` makes holding the
# lock: neither ever moved again. Fulfilments started before it keep the old order
# (their Updates came after the opening, or they are stuck and are terminated).
UPDATES_WAIT_FOR_OPEN = "updates-wait-for-open"
# Since this patch a parcel's id comes from its Update's id (and the run's start), not
# from ``workflow.now()``. A workflow task tried again (its worker died after
# ``fulfillment.create_shipment`` committed, before the task's completion recorded the
# local step) runs the handler again at a later ``now()``: the step named another
# parcel, and made it too (the same units twice while some were left) or was refused
# (``quantity_exceeds_unassigned``), the first parcel left with no workflow to label it.
PARCEL_ID_FROM_UPDATE = "parcel-id-from-update"
# Since this patch an accepted cancel's own step is retried until it answers, as the
# undoing after it is. Before, it had a staff step's five attempts: an attempt that
# committed (its answer lost: the worker or the database went away) followed by four
# that failed answered the Update "try again", the rows cancelled while nothing gave the
# stock back or refunded the payment, and the workflow, not knowing, waited for staff to
# cancel again (the API had often answered 202, "under way", already). The step is one
# idempotent transaction, so trying it until it answers either cancels (and the undoing
# follows) or refuses with the business reason (``fulfillment_has_labels``).
CANCEL_UNTIL_ANSWERED = "cancel-until-answered"
# A cancel from Temporal (the UI, the CLI) ends ``run`` where it waits; the workflow then
# closed with staff's cancel Update still undoing the order (stock back, the payment not
# yet refunded, the order not closed), the rest never run. Since this patch ``run`` waits
# for the Updates in flight to finish before it ends cancelled.
HANDLERS_FINISH_WHEN_CANCELLED = "handlers-finish-when-cancelled"
# Since this patch PARCEL_ID_FROM_UPDATE, CANCEL_UNTIL_ANSWERED and
# HANDLERS_FINISH_WHEN_CANCELLED are not asked: it came after them, so a run that has it
# takes their new code. The first two were asked when an Update's turn came, which is
# often when a local step ended (the opening, another Update's); a local step's result
# that comes while the worker answers a query is recorded one workflow task before what
# the workflow does with it, and a replay (a query of the closed fulfilment, a worker
# taking it up after its cache dropped it) asked the patch before it knew of its marker,
# answered False and failed ("Non-deprecated patch marker encountered"). This one is
# asked in the first task.
PATCHES_DECIDED_AT_START = "fulfillment-patches-decided-at-start"


# Unsandboxed, as the event workflows are: every order runs this workflow, and building
# its sandbox was about 10 ms of worker CPU per run (recorded histories replayed: 23-30
# ms sandboxed, 13-22 unsandboxed, issue #15). Its module uses neither the clock nor
# randomness nor the OS (tests/temporal/test_sandbox.py reads it), and what it imports
# is passed through the sandbox all the same.
@workflow.defn(name=FULFILLMENT_WORKFLOW, sandboxed=False)
class FulfillmentWorkflow:
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
        # Updates and holds run one at a time, in the order they come.
        self._lock = asyncio.Lock()
        self._local_steps = False
        self._patches_at_start = False  # PATCHES_DECIDED_AT_START

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
        self._derive()

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
            await self._undo_order(opened, request.reason)
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
            self._mirror(opened.status)
        while True:
            await workflow.wait_condition(lambda: bool(self._exceptions) or self._finished())
            while self._exceptions:
                news = self._exceptions.pop(0)
                reason = f"shipment {news.shipment_id}: {news.status}"
                if news.detail:
                    reason += f" ({news.detail})"
                async with self._lock:
                    await self._hold(reason, forever=True)
            if self._finished():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()

    # --- steps ----------------------------------------------------------------------------

    async def _hold(self, reason: str, *, forever: bool = False) -> None:
        opened = await self._wait_opened()
        change: FulfillmentChange = await self._step(
            FulfillmentActivities.hold,
            FulfillmentHoldInput(fulfillment_id=opened.fulfillment_id, reason=reason),
            "put the fulfilment on hold",
            forever=forever,
            local=True,
        )
        if change.changed:
            self._hold_reason = reason
        self._mirror(change.status)

    async def _start_parcel(self, opened: FulfillmentOpened, shipment_id: str) -> None:
        handle: workflow.ChildWorkflowHandle[Any, Any] = await workflow.start_child_workflow(
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
        )
        self._children[shipment_id] = handle
        self._running.add(shipment_id)
        self._watchers[shipment_id] = asyncio.create_task(self._watch(shipment_id, handle))

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

    async def _undo_order(self, opened: FulfillmentOpened, reason: str | None) -> None:
        """The order's own compensations (as ``OrderWorkflow`` runs them), then the email."""
        ref = OrderRef(order_id=opened.order_id)
        await self._step(
            OrderActivities.release_stock, ref, "give the sold stock back", forever=True
        )
        await self._step(
            PaymentActivities.void_or_refund,
            ref,
            "refund the captured payment",
            queue=TaskQueue.PAYMENTS,
            forever=True,
        )
        await self._step(
            OrderActivities.close,
            CloseInput(
                order_id=opened.order_id,
                status=OrderStatus.CANCELLED,
                failure_code=None,
                detail=reason or "cancelled before shipping",
            ),
            "mark the order cancelled",
            forever=True,
        )
        try:
            await workflow.execute_activity_method(
                EmailActivities.send_email,
                SendEmailInput(
                    # The same key as OrderWorkflow's: an order is cancelled once.
                    idempotency_key=f"order_cancelled:{opened.order_id}",
                    template="order_cancelled",
                    to=opened.email,
                    context={
                        "name": opened.name,
                        "order_id": opened.order_id,
                        "total": opened.total,
                        "currency": opened.currency,
                        "reason": reason or "",
                    },
                ),
                task_queue=str(TaskQueue.NOTIFICATIONS),
                start_to_close_timeout=NOTIFICATION_START_TO_CLOSE,
                schedule_to_close_timeout=NOTIFICATION_SCHEDULE_TO_CLOSE,
                retry_policy=NOTIFICATION_RETRY,
                summary="notify-cancelled: email order_cancelled",
            )
        except ActivityError as err:
            # A lost email never undoes a cancel; the email ledger shows what was not sent.
            workflow.logger.warning("order_cancelled email not sent: %s", err)

    async def _step(
        self,
        activity: Callable[..., Awaitable[Any]],
        arg: BaseModel,
        summary: str,
        *,
        queue: TaskQueue = TaskQueue.ORDERS,
        forever: bool = False,
        local: bool = False,
    ) -> Any:
        """``local``: a database step of this workflow's own, run in this worker since
        ``LOCAL_FULFILLMENT_STEPS`` (each is one transaction, safe to repeat)."""
        if local and self._local_steps:
            return await workflow.execute_local_activity_method(
                activity,
                arg,
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=FOREVER if forever else STAFF_STEP_RETRY,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
                summary=summary,
            )
        return await workflow.execute_activity_method(
            activity,
            arg,
            task_queue=str(queue),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=FOREVER if forever else STAFF_STEP_RETRY,
            summary=summary,
        )

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
        return id_from(
            IdPrefix.SHIPMENT,
            int(workflow.info().start_time.timestamp() * 1000),
            int.from_bytes(key[:10], "big"),
        )

    def _since(self, patch: str) -> bool:
        """Whether this run takes ``patch``'s new code: yes since PATCHES_DECIDED_AT_START
        (``run`` asks it before any Update's turn can come); runs started before ask
        where they did."""
        return self._patches_at_start or workflow.patched(patch)

    # --- state ----------------------------------------------------------------------------

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
