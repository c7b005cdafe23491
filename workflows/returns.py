"""``ReturnWorkflow``: one per return (RMA), from the request to its close.

requested → (``approve`` | ``decline`` Updates from staff, or approved at once when the
reason is one of RETURN_AUTO_APPROVE_REASONS) → the return label is issued and the
return is ``approved`` → the ``receive`` Update (what came back, per line, undamaged and
damaged) → ``received`` (undamaged units restocked) → the refund → ``refunded`` →
``closed``. An approved return not received within its ship-by time is ``cancelled``
(the label voided, the customer told, nothing refunded), unless the carrier has scanned
its label by then (the goods are on their way, late): it stays approved and waits for
them; a declined one ends there.

The ``returns`` row is written by the activities; the workflow mirrors the status for its
``status`` query and the ``ReturnStatus``/``OrderId``/``CustomerId`` search attributes.
It reads the row (``returns.read``) at its start and where an operator reset it, and goes
on from the stored status (``RESET_READS_THE_RETURN``); its patches are
``workflows/return_patches.py``, its state and messages (the query and the Updates)
``workflows/return_state.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.returns import ReturnActivities
    from models.returns import ReturnStatus
    from temporal.local_retries import LOCAL_RETRY_THRESHOLD
    from temporal.queues import TaskQueue
    from workflows.return_patches import (
        APPROVAL_BEFORE_RUN_KEPT,
        DEADLINE_TAKES_STORED_STATUS,
        LATE_PARCEL_AWAITED,
        REFUND_REFUSED,
        RESET_READS_THE_RETURN,
    )
    from workflows.return_state import ReturnState
    from workflows.types.fulfillment import RETURN_WORKFLOW
    from workflows.types.returns import (
        LABEL_IN_USE,
        REFUND_NOT_REFUNDABLE,
        ApproveInput,
        ApproveRequest,
        DeclineInput,
        ReceiveInput,
        ReturnInput,
        ReturnRef,
        ReturnView,
        StoredReturn,
    )

STEP_TIMEOUT = timedelta(seconds=60)
# Every step is idempotent: retried until it succeeds, unless it fails for a business
# reason (the carrier refused the label).
STEP_RETRY = RetryPolicy(
    maximum_attempts=0,
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
)
# The return read as stored: one short database read, a local activity (a marker in the
# history, no schedule/start/complete events).
READ_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=RETURN_WORKFLOW)
class ReturnWorkflow(ReturnState):
    # --- the return ---------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ReturnInput) -> ReturnView:
        self._input = input
        # In the run's first workflow task (the SDK remembers the answer).
        self._reads_stored = workflow.patched(RESET_READS_THE_RETURN)
        ref = ReturnRef(return_id=input.return_id)
        self._mirror(ReturnStatus.REQUESTED)
        if input.auto_approve and not (
            self._approval is not None and workflow.patched(APPROVAL_BEFORE_RUN_KEPT)
        ):
            self._approval = ApproveRequest(staff_id=None)
        if self._reads_stored:
            self._resets.start()
            # A run reset to its first task: the return may have moved on since.
            at_start = await self._read(ref, "read the return as stored")
            if at_start.status is not ReturnStatus.REQUESTED:
                return await self._go_on_from_stored(ref, at_start)
        while self._status == ReturnStatus.REQUESTED:
            stored = await self._wait(ref, self._deciding)
            if stored is not None and stored.status is not ReturnStatus.REQUESTED:
                return await self._go_on_from_stored(ref, stored)
            if not self._deciding():
                continue  # reset, the return still requested: wait on
            if self._decline is not None:
                decline = self._decline
                await self._step(
                    ReturnActivities.decline,
                    DeclineInput(
                        return_id=input.return_id, reason=decline.reason, staff_id=decline.staff_id
                    ),
                    "decline; the customer is told",
                )
                self._mirror(ReturnStatus.DECLINED)
                return self.status()
            await self._issue_label(input)
        return await self._take_receipt(ref, timedelta(seconds=input.ship_by_seconds))

    async def _take_receipt(self, ref: ReturnRef, ship_by: timedelta) -> ReturnView:
        """Approved: the receipt, awaited for ``ship_by``, and what follows it."""
        try:
            stored = await self._wait(ref, lambda: self._receipt is not None, within=ship_by)
        except TimeoutError:
            self._expired = True
            ended = await self._cancel_unsent(ref)
            if ended is ReturnStatus.CANCELLED:
                self._mirror(ReturnStatus.CANCELLED)
                return self.status()
            if ended is not None:
                return await self._go_on_from(ref, ended)
        else:
            if stored is not None and (
                stored.status is not ReturnStatus.APPROVED or self._receipt is None
            ):
                return await self._go_on_from_stored(ref, stored)

        receipt = self._receipt
        assert receipt is not None
        self._refund_amount = await self._step(
            ReturnActivities.receive,
            ReceiveInput(return_id=ref.return_id, lines=receipt.lines, staff_id=receipt.staff_id),
            "record the receipt, restock undamaged units",
        )
        self._mirror(ReturnStatus.RECEIVED)
        await self._refund(ref)
        self._mirror(ReturnStatus.REFUNDED)
        await self._step(ReturnActivities.close, ref, "close")
        self._mirror(ReturnStatus.CLOSED)
        return self.status()

    async def _cancel_unsent(self, ref: ReturnRef) -> ReturnStatus | None:
        """Not sent back in time: cancel (the label voided), ``cancelled``. None when the
        carrier has scanned the label meanwhile: the goods come late, and their receipt
        is awaited (taken again by ``receive``), with no second deadline. Another status
        (since DEADLINE_TAKES_STORED_STATUS): the return had moved on, as stored."""
        try:
            answered: ReturnStatus = await self._step(
                ReturnActivities.cancel, ref, "not sent back in time: cancel"
            )
        except ActivityError as err:
            cause = err.cause
            if not (
                isinstance(cause, ApplicationError)
                and cause.type == LABEL_IN_USE
                and workflow.patched(LATE_PARCEL_AWAITED)
            ):
                raise
            self._expired = False
            workflow.set_current_details(f"{self._status}; sent late: {cause.message}")
            while self._receipt is None:
                stored = await self._wait(ref, lambda: self._receipt is not None)
                if stored is not None and stored.status is not ReturnStatus.APPROVED:
                    return stored.status  # reset: the return moved on, as stored
            return None
        if answered != ReturnStatus.CANCELLED and workflow.patched(DEADLINE_TAKES_STORED_STATUS):
            return ReturnStatus(answered)
        return ReturnStatus.CANCELLED

    async def _go_on_from(
        self, ref: ReturnRef, stored: ReturnStatus, *, known: StoredReturn | None = None
    ) -> ReturnView:
        """The return as stored, which this run had not seen: received, it is refunded
        and closed (the receipt's amount from the row read, ``known``, or read back:
        ``receive`` answers a repeat with it); refunded, closed; closed, declined or
        cancelled, it ends so."""
        self._expired = False
        if stored not in (ReturnStatus.RECEIVED, ReturnStatus.REFUNDED, ReturnStatus.CLOSED):
            self._mirror(stored)
            return self.status()
        if known is not None:
            self._refund_amount = known.refund_amount
        else:
            self._refund_amount = await self._step(
                ReturnActivities.receive,
                ReceiveInput(return_id=ref.return_id, lines=[]),
                "the receipt as recorded (this run did not see it)",
            )
        self._mirror(stored)
        if stored is ReturnStatus.RECEIVED:
            await self._refund(ref)
            self._mirror(ReturnStatus.REFUNDED)
        if stored is not ReturnStatus.CLOSED:
            await self._step(ReturnActivities.close, ref, "close")
            self._mirror(ReturnStatus.CLOSED)
        return self.status()

    # --- a reset run (since RESET_READS_THE_RETURN) --------------------------------------

    async def _wait(
        self, ref: ReturnRef, done: Callable[[], bool], *, within: timedelta | None = None
    ) -> StoredReturn | None:
        """Wait until ``done()`` (``TimeoutError`` after ``within``), or, since
        RESET_READS_THE_RETURN, until the run is reset: then the return as stored."""
        if not self._reads_stored:
            await workflow.wait_condition(done, timeout=within)
            return None
        await workflow.wait_condition(lambda: done() or self._resets.seen, timeout=within)
        if not self._resets.take():
            return None
        return await self._read(ref, "reset: read the return again")

    async def _read(self, ref: ReturnRef, summary: str) -> StoredReturn:
        stored: StoredReturn = await workflow.execute_local_activity_method(
            ReturnActivities.read,
            ref,
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=STEP_RETRY,
            local_retry_threshold=LOCAL_RETRY_THRESHOLD,
            summary=summary,
        )
        return stored

    async def _go_on_from_stored(self, ref: ReturnRef, stored: StoredReturn) -> ReturnView:
        """Go on from the return as its row holds it: approved, await its receipt until
        the stored ship-by time; else as ``_go_on_from``."""
        if stored.status is not ReturnStatus.APPROVED:
            return await self._go_on_from(ref, stored.status, known=stored)
        self._mirror(ReturnStatus.APPROVED)
        return await self._take_receipt(ref, self._time_left(stored.ship_by))

    def _time_left(self, ship_by: datetime | None) -> timedelta:
        """Until the stored ship-by time; a second at least, so that a receipt already
        taken is seen before the deadline's cancel."""
        assert self._input is not None
        if ship_by is None:  # not expected of an approved row: the full time
            return timedelta(seconds=self._input.ship_by_seconds)
        return max(ship_by - workflow.now(), timedelta(seconds=1))

    async def _refund(self, ref: ReturnRef) -> None:
        """The refund, retried until it succeeds, unless Stripe no longer has the money
        (``payment_not_refundable``, non-retryable): then the workflow fails with that
        type, the return ``received`` (its search attribute), for staff to settle."""
        try:
            await self._step(ReturnActivities.refund, ref, "refund through the payment gateway")
        except ActivityError as err:
            cause = err.cause
            if not (
                isinstance(cause, ApplicationError)
                and cause.type == REFUND_NOT_REFUNDABLE
                and workflow.patched(REFUND_REFUSED)
            ):
                raise
            self._refund_error = f"the refund was refused: {cause.message}"
            workflow.set_current_details(f"{self._status}; {self._refund_error}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                self._refund_error, *cause.details, type=cause.type, non_retryable=True
            ) from err

    async def _issue_label(self, input: ReturnInput) -> None:
        """Approve with a label; if the carrier refuses, staff may try again or decline."""
        approval = self._approval
        assert approval is not None
        try:
            await self._step(
                ReturnActivities.issue_label,
                ApproveInput(
                    return_id=input.return_id,
                    staff_id=approval.staff_id,
                    auto_approved=approval.staff_id is None,
                    ship_by_seconds=input.ship_by_seconds,
                ),
                "issue the return label and approve",
            )
        except ActivityError as err:
            cause = err.cause
            detail = cause.message if isinstance(cause, ApplicationError) else str(err)
            workflow.logger.warning("return label for %s failed: %s", input.return_id, detail)
            self._label_error = f"the return label could not be issued: {detail}"
            self._approval = None
            return
        self._mirror(ReturnStatus.APPROVED)

    async def _step(
        self, activity: Callable[..., Awaitable[Any]], arg: BaseModel, summary: str
    ) -> Any:
        return await workflow.execute_activity_method(
            activity,
            arg,
            task_queue=str(TaskQueue.ORDERS),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=STEP_RETRY,
            summary=summary,
        )
