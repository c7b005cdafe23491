"""Returns (RMA): a customer's request to send delivered lines back, and its lines.

``ReturnWorkflow`` (one per return) owns every change after the request.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field as PydanticField
from pydantic import StrictInt, StringConstraints, model_validator
from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, String, Text
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import (
    MULTILINE_TEXT,
    CamelModel,
    MultilineText,
    RequestModel,
    created_at_field,
    one_of,
    updated_at_field,
)
from models.catalog import MAX_AMOUNT


class ReturnReason(StrEnum):
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    NO_LONGER_NEEDED = "no_longer_needed"
    OTHER = "other"


# The shop's fault: the refund includes the order's shipping.
SHOP_FAULT_REASONS = frozenset(
    {ReturnReason.DAMAGED, ReturnReason.WRONG_ITEM, ReturnReason.NOT_AS_DESCRIBED}
)


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"  # the return label is issued with the approval
    DECLINED = "declined"
    RECEIVED = "received"
    REFUNDED = "refunded"
    CLOSED = "closed"
    CANCELLED = "cancelled"  # approved but not sent back within RETURN_SHIP_BY_DAYS


class ReturnRequest(SQLModel, table=True):
    __tablename__ = "returns"
    __table_args__ = (
        Index("returns_status_created_idx", "status", "created_at"),
        CheckConstraint(one_of("status", ReturnStatus), name="status_known"),
        CheckConstraint(one_of("reason", ReturnReason), name="reason_known"),
        CheckConstraint("refund_amount IS NULL OR refund_amount >= 0", name="refund_not_negative"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.RETURN), primary_key=True)
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    user_id: str = Field(sa_column=Column(String, nullable=False, index=True))
    status: ReturnStatus = Field(sa_column=Column(String(16), nullable=False))
    reason: ReturnReason = Field(sa_column=Column(String(24), nullable=False))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decline_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    auto_approved: bool = Field(default=False)
    # The return label (issued at approval).
    label_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tracking_code: str | None = Field(default=None, max_length=128)
    tracking_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    provider_shipment_id: str | None = Field(
        default=None, sa_column=Column(String(128), unique=True)
    )
    currency: str = Field(default="USD", max_length=3)
    # Computed when the goods are received; refunded once with key ``return:{id}``.
    refund_amount: int | None = Field(default=None)
    refund_id: str | None = Field(default=None, max_length=128)
    # Why the refund was refused for good (another refund took the money after receipt):
    # the return stays ``received`` until staff settle it, with ``settlement_note``.
    refund_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    settlement_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ship_by: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    received_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    refunded_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ReturnLine(SQLModel, table=True):
    __tablename__ = "return_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "received_quantity >= 0 AND damaged_quantity >= 0 "
            "AND received_quantity + damaged_quantity <= quantity",
            name="received_within_quantity",
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.RETURN_LINE), primary_key=True)
    return_id: str = Field(
        sa_column=Column(
            String, ForeignKey("returns.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    order_line_id: str = Field(
        sa_column=Column(
            String, ForeignKey("order_lines.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    product_id: str = Field(max_length=40)
    quantity: int
    # Filled at receipt: undamaged units (restocked) and damaged ones (not restocked).
    received_quantity: int = Field(default=0)
    damaged_quantity: int = Field(default=0)


# --- wire schemas ---------------------------------------------------------------------

REASON_TEXT = {
    ReturnReason.DAMAGED: "The item arrived damaged",
    ReturnReason.WRONG_ITEM: "We sent the wrong item",
    ReturnReason.NOT_AS_DESCRIBED: "The item is not as described",
    ReturnReason.NO_LONGER_NEEDED: "You no longer need the item",
    ReturnReason.OTHER: "Another reason (tell us in the note)",
}


class ReturnLineCreate(RequestModel):
    """A line to send back: the order line (``orderLineId``), or the product
    (``productId``) when the order has one line of it."""

    order_line_id: str | None = PydanticField(
        default=None, max_length=40, examples=["oline_01JD3Q5Z8K2M4N6P8R0T2V4X6Z"]
    )
    product_id: str | None = PydanticField(default=None, max_length=40)
    quantity: StrictInt = PydanticField(gt=0, le=10_000, examples=[1])

    @model_validator(mode="after")
    def _names_a_line(self) -> ReturnLineCreate:
        if self.order_line_id is None and self.product_id is None:
            raise ValueError("give orderLineId (or productId)")
        return self


class ReturnCreate(RequestModel):
    lines: list[ReturnLineCreate] = PydanticField(min_length=1, max_length=100)
    reason: ReturnReason
    note: MultilineText | None = PydanticField(default=None, max_length=1000)


# Staff's words on a decision (a decline's reason, a settlement's note): something to
# read, so blank is refused at the edge (422), not left to the workflow's validator (a 409).
StaffText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), MULTILINE_TEXT
]


class ReturnDecline(RequestModel):
    reason: StaffText = PydanticField(examples=["worn, not returnable"])


class ReturnSettle(RequestModel):
    amount: StrictInt = PydanticField(
        ge=0,
        le=MAX_AMOUNT,
        description="Minor units refunded now (0: the money went back another way); at "
        "most the amount fixed at receipt and what is left to refund",
        examples=[787],
    )
    note: StaffText = PydanticField(examples=["refunded 30.00 by phone on 12-05; the rest now"])


class ReturnReceiveLine(RequestModel):
    return_line_id: str = PydanticField(max_length=40)
    received_quantity: StrictInt = PydanticField(
        ge=0, le=10_000, description="Units back in good condition: restocked and refunded"
    )
    damaged_quantity: StrictInt = PydanticField(
        default=0, ge=0, le=10_000, description="Units back damaged: refunded, not restocked"
    )


class ReturnReceive(RequestModel):
    lines: list[ReturnReceiveLine] = PydanticField(min_length=1, max_length=100)


class ReturnLinePublic(CamelModel):
    id: str
    order_line_id: str
    product_id: str
    name: str | None = None
    quantity: int
    received_quantity: int
    damaged_quantity: int


class ReturnPublic(CamelModel):
    id: str
    order_id: str
    user_id: str
    status: ReturnStatus
    reason: ReturnReason
    note: str | None
    decline_reason: str | None
    auto_approved: bool
    label_url: str | None
    tracking_code: str | None
    tracking_url: str | None
    currency: str
    refund_amount: int | None = PydanticField(
        description="Minor units; set when the goods are received"
    )
    refund_id: str | None
    refund_error: str | None = PydanticField(
        default=None,
        description="Why the refund was refused (the money went to another refund after "
        "receipt): the return stays `received` until staff settle it",
    )
    settlement_note: str | None = PydanticField(
        default=None, description="What staff wrote when they settled a refused refund"
    )
    ship_by: datetime | None
    approved_at: datetime | None
    decided_at: datetime | None
    received_at: datetime | None
    refunded_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    lines: list[ReturnLinePublic]


class ReturnReasonPublic(CamelModel):
    reason: ReturnReason
    description: str
    shop_fault: bool = PydanticField(description="The refund includes the order's shipping")
    auto_approved: bool = PydanticField(description="Approved without waiting for staff")
