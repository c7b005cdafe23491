"""``ReturnWorkflow``'s input, answers and messages, and its activities' inputs.

The workflow's name and id scheme live with the other after-sale workflows
(``workflows.types.fulfillment``: ``RETURN_WORKFLOW``, ``return_workflow_id``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from models.returns import ReturnReason, ReturnStatus

# Message names: recorded in every history, so never renamed.
APPROVE_UPDATE = "approve"
DECLINE_UPDATE = "decline"
RECEIVE_UPDATE = "receive"

# Activity names (the stand-ins of the workflow tests register under these).
ISSUE_LABEL_ACTIVITY = "returns.issue_label"
DECLINE_ACTIVITY = "returns.decline"
CANCEL_ACTIVITY = "returns.cancel"
RECEIVE_ACTIVITY = "returns.receive"
REFUND_ACTIVITY = "returns.refund"
CLOSE_ACTIVITY = "returns.close"
# Reads the return's row, changes nothing (since "return-reset-reads-the-return").
READ_ACTIVITY = "returns.read"


class ReturnLineRef(BaseModel):
    """A line of the return as the workflow knows it: enough to validate a receipt."""

    return_line_id: str
    quantity: int


class ReturnInput(BaseModel):
    return_id: str
    order_id: str
    user_id: str
    reason: ReturnReason
    lines: list[ReturnLineRef]
    # Decided at the request from RETURN_AUTO_APPROVE_REASONS (kept in the history).
    auto_approve: bool = False
    # RETURN_SHIP_BY_DAYS at the request: an approved return not received by then ends.
    ship_by_seconds: float = 14 * 86400.0


class ApproveRequest(BaseModel):
    staff_id: str | None = None  # None: approved automatically


class DeclineRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)
    staff_id: str | None = None


class ReceivedLine(BaseModel):
    """Per return line: units that came back in good condition (restocked) and units
    that came back damaged (not restocked). Both are refunded."""

    return_line_id: str
    received_quantity: int = Field(ge=0)
    damaged_quantity: int = Field(ge=0)


class ReceiveRequest(BaseModel):
    lines: list[ReceivedLine]
    staff_id: str | None = None


class ReturnRef(BaseModel):
    return_id: str


class StoredReturn(BaseModel):
    """The return as its row holds it (``returns.read``): what a run goes on from when
    the row has moved on where the run did not see it (a run reset by an operator)."""

    status: ReturnStatus
    approved_at: datetime | None = None
    # The return label, bought with the approval.
    label_issued: bool = False
    # Approved: the goods are awaited until then.
    ship_by: datetime | None = None
    received_at: datetime | None = None
    # Fixed at receipt: what the return is owed.
    refund_amount: int | None = None
    # When the refund was made, or why Stripe refused it (for staff to settle).
    refunded_at: datetime | None = None
    refund_error: str | None = None


class DeclineInput(BaseModel):
    return_id: str
    reason: str
    staff_id: str | None = None


class ApproveInput(BaseModel):
    return_id: str
    staff_id: str | None = None
    auto_approved: bool = False
    ship_by_seconds: float


class ReceiveInput(BaseModel):
    return_id: str
    lines: list[ReceivedLine]
    staff_id: str | None = None


# The refund activity's failure type when Stripe no longer has the money (non-retryable):
# ``services.payments.NotRefundable.code``.
REFUND_NOT_REFUNDABLE = "payment_not_refundable"
# The cancel's answer when the carrier has scanned the return label (it cannot be voided:
# the goods are on their way), ``integrations.shipping.provider.LabelInUse``'s code.
LABEL_IN_USE = "label_in_use"


class ReturnView(BaseModel):
    """The ``status`` query's answer (and the workflow's result), camelCase like the API."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )

    return_id: str
    order_id: str
    status: ReturnStatus
    refund_amount: int | None = None
    # Why the refund was refused for good (Stripe no longer had the money): the return
    # stays ``received`` and its workflow failed, for staff to settle.
    refund_error: str | None = None
