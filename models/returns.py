"""Returns (RMA): a customer's request to send delivered lines back, and its lines.

``ReturnWorkflow`` (one per return) owns every change after the request.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, DateTime, ForeignKey, Index, String, Text
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import created_at_field, updated_at_field


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
        CheckConstraint(
            f"status IN ({', '.join(repr(str(s)) for s in ReturnStatus)})", name="status_known"
        ),
        CheckConstraint(
            f"reason IN ({', '.join(repr(str(r)) for r in ReturnReason)})", name="reason_known"
        ),
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
