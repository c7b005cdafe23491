"""``ReturnWorkflow``'s steps (queue ``orders``), thin over ``services.returns``; each is
safe to repeat (a step moves the return only from the status it expects)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.errors import ShopError
from models.returns import ReturnStatus
from services.payments import NotRefundable
from services.returns import ReturnLabels, ReturnSteps
from temporal.errors import application_errors, to_application_error
from workflows.types.returns import (
    CANCEL_ACTIVITY,
    CLOSE_ACTIVITY,
    DECLINE_ACTIVITY,
    ISSUE_LABEL_ACTIVITY,
    READ_ACTIVITY,
    RECEIVE_ACTIVITY,
    REFUND_ACTIVITY,
    ApproveInput,
    DeclineInput,
    ReceiveInput,
    ReturnRef,
    StoredReturn,
)


class ReturnActivities:
    def __init__(self, labels: ReturnLabels, steps: ReturnSteps) -> None:
        self._labels = labels
        self._steps = steps

    @activity.defn(name=ISSUE_LABEL_ACTIVITY)
    async def issue_label(self, input: ApproveInput) -> ReturnStatus:
        """Book the return label (provider shipment saved before buying) and approve."""
        with application_errors():
            return await self._labels.approve(
                input.return_id,
                staff_id=input.staff_id,
                auto=input.auto_approved,
                ship_by=timedelta(seconds=input.ship_by_seconds),
            )

    @activity.defn(name=DECLINE_ACTIVITY)
    async def decline(self, input: DeclineInput) -> ReturnStatus:
        with application_errors():
            return await self._labels.decline(
                input.return_id, reason=input.reason, staff_id=input.staff_id
            )

    @activity.defn(name=CANCEL_ACTIVITY)
    async def cancel(self, input: ReturnRef) -> ReturnStatus:
        """Not sent back in time: void the label, cancel, tell the customer."""
        with application_errors():
            return await self._labels.cancel(input.return_id)

    @activity.defn(name=RECEIVE_ACTIVITY)
    async def receive(self, input: ReceiveInput) -> int | None:
        """Record the receipt, restock undamaged units, fix the refund amount."""
        with application_errors():
            return await self._steps.receive(input.return_id, input.lines, staff_id=input.staff_id)

    @activity.defn(name=REFUND_ACTIVITY)
    async def refund(self, input: ReturnRef) -> str | None:
        """One refund at the provider (key ``return:{id}``). The goods are back: the
        refund is owed, so even a "final" provider answer is retried (an operator sees
        it retrying) rather than ending the return without its money. But when Stripe
        has no longer that much to refund (``payment_not_refundable``: another refund
        took it after receipt), no retry can change it: that fails at once, for staff."""
        try:
            return await self._steps.refund(input.return_id)
        except NotRefundable as exc:
            raise to_application_error(exc) from exc
        except ShopError as exc:
            raise ApplicationError(exc.detail, exc.extra, type=exc.code) from exc

    @activity.defn(name=READ_ACTIVITY)
    async def read(self, input: ReturnRef) -> StoredReturn:
        """The return as stored (a run reset by an operator goes on from it)."""
        with application_errors():
            return await self._steps.stored(input.return_id)

    @activity.defn(name=CLOSE_ACTIVITY)
    async def close(self, input: ReturnRef) -> ReturnStatus:
        with application_errors():
            return await self._steps.close(input.return_id)
