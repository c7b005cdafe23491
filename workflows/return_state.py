"""``ReturnWorkflow``'s state, and what reads or changes it from outside the run: the
``status`` query, the ``approve``, ``decline`` and ``receive`` Updates (and their
validators), and the status mirrored in the search attributes and in the UI's current
details.

``ReturnWorkflow`` (``workflows/returns.py``) is this class with the run that moves it.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.returns import ReturnStatus
    from temporal.search_attributes import CUSTOMER_ID, ORDER_ID, RETURN_STATUS
    from workflows.resets import ResetWatch
    from workflows.types.fulfillment import STATUS_QUERY
    from workflows.types.returns import (
        REFUND_NOT_REFUNDABLE,
        ApproveRequest,
        DeclineRequest,
        ReceiveRequest,
        ReturnInput,
        ReturnView,
    )


def _refuse(message: str, code: str) -> ApplicationError:
    return ApplicationError(message, type=code, non_retryable=True)


class ReturnState:
    def __init__(self) -> None:
        self._input: ReturnInput | None = None
        self._status = ReturnStatus.REQUESTED
        self._refund_amount: int | None = None
        self._approval: ApproveRequest | None = None
        self._decline: DeclineRequest | None = None
        self._receipt: ReceiveRequest | None = None
        self._label_error: str | None = None
        self._refund_error: str | None = None
        self._expired = False  # the ship-by time passed: no receipt is taken any more
        self._reads_stored = False  # RESET_READS_THE_RETURN
        self._resets = ResetWatch()

    # --- messages ---------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ReturnView:
        return ReturnView(
            return_id=self._input.return_id if self._input else "",
            order_id=self._input.order_id if self._input else "",
            status=self._status,
            refund_amount=self._refund_amount,
            refund_error=self._refund_error,
        )

    def _deciding(self) -> bool:
        return self._approval is not None or self._decline is not None

    def _check_undecided(self) -> None:
        if self._status != ReturnStatus.REQUESTED:
            raise _refuse(f"the return is {self._status}", "return_not_requested")
        if self._deciding():
            # Still ``requested`` while another approve (buying its label) or decline is
            # under way: "the return is requested" would contradict the code.
            raise _refuse(
                "the return is already being approved or declined", "return_not_requested"
            )

    @workflow.update  # named APPROVE_UPDATE (typed callers keep the method's result type)
    async def approve(self, request: ApproveRequest) -> ReturnView:
        self._approval = request
        self._label_error = None
        await workflow.wait_condition(
            lambda: self._status != ReturnStatus.REQUESTED or self._label_error is not None
        )
        if self._label_error is not None:
            raise _refuse(self._label_error, "return_label_failed")
        return self.status()

    @approve.validator
    def _validate_approve(self, request: ApproveRequest) -> None:
        self._check_undecided()

    @workflow.update  # named DECLINE_UPDATE (typed callers keep the method's result type)
    async def decline(self, request: DeclineRequest) -> ReturnView:
        self._decline = request
        await workflow.wait_condition(lambda: self._status != ReturnStatus.REQUESTED)
        return self.status()

    @decline.validator
    def _validate_decline(self, request: DeclineRequest) -> None:
        self._check_undecided()
        if not request.reason.strip():
            raise _refuse("a decline needs a reason", "decline_reason_required")

    @workflow.update  # named RECEIVE_UPDATE (typed callers keep the method's result type)
    async def receive(self, request: ReceiveRequest) -> ReturnView:
        self._receipt = request
        await workflow.wait_condition(
            lambda: (
                self._status not in (ReturnStatus.APPROVED, ReturnStatus.RECEIVED)
                or self._refund_error is not None
            )
        )
        if self._refund_error is not None:
            raise _refuse(self._refund_error, REFUND_NOT_REFUNDABLE)
        return self.status()

    @receive.validator
    def _validate_receive(self, request: ReceiveRequest) -> None:
        if self._status != ReturnStatus.APPROVED or self._expired:
            status = ReturnStatus.CANCELLED if self._expired else self._status
            raise _refuse(f"the return is {status}", "return_not_approved")
        if self._receipt is not None:
            raise _refuse("the return's receipt is already being recorded", "return_not_approved")
        assert self._input is not None
        quantities = {ln.return_line_id: ln.quantity for ln in self._input.lines}
        seen: set[str] = set()
        for line in request.lines:
            if line.return_line_id not in quantities or line.return_line_id in seen:
                raise _refuse(
                    f"{line.return_line_id} is not a line of this return (or is repeated)",
                    "invalid_receipt",
                )
            seen.add(line.return_line_id)
            if line.received_quantity + line.damaged_quantity > quantities[line.return_line_id]:
                raise _refuse(
                    f"line {line.return_line_id}: {line.received_quantity} received and "
                    f"{line.damaged_quantity} damaged exceed the "
                    f"{quantities[line.return_line_id]} returned",
                    "invalid_receipt",
                )

    def _mirror(self, status: ReturnStatus) -> None:
        self._status = status
        assert self._input is not None
        workflow.set_current_details(f"{status}; order {self._input.order_id}")
        workflow.upsert_search_attributes(
            [
                RETURN_STATUS.value_set(str(status)),
                ORDER_ID.value_set(self._input.order_id),
                CUSTOMER_ID.value_set(self._input.user_id),
            ]
        )
