"""Payments: one per order (the provider's intent and what it captured and refunded) and
its history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    String,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import (
    created_at_field,
    updated_at_field,
)


class PaymentStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    FAILED = "failed"


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(
            "0 <= amount_refunded AND amount_refunded <= amount_captured "
            "AND amount_captured <= amount",
            name="amounts_consistent",
        ),
        CheckConstraint(
            "status IN ('pending', 'requires_action', 'authorized', 'captured', 'voided', "
            "'refunded', 'partially_refunded', 'failed')",
            name="status_known",
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.PAYMENT), primary_key=True)
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    provider: str = Field(max_length=32)
    intent_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    amount: int
    currency: str = Field(max_length=3)
    status: PaymentStatus = Field(sa_column=Column(String(24), nullable=False))
    amount_captured: int = Field(default=0)
    amount_refunded: int = Field(default=0)
    failure_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class PaymentEvent(SQLModel, table=True):
    """A payment's history: our calls and the provider's webhooks (deduplicated by id)."""

    __tablename__ = "payment_events"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.PAYMENT_EVENT), primary_key=True)
    payment_id: str | None = Field(
        default=None,
        sa_column=Column(
            String, ForeignKey("payments.id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    # The provider's event id for webhooks; a delivery seen twice is dropped.
    provider_event_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    type: str = Field(max_length=100)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = created_at_field()
