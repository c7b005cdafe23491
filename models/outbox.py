"""The transactional outbox: domain events written in the same transaction as the change.

The relay (``services/events``) delivers rows in ``seq`` order per aggregate, at least once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import created_at_field


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's hot query: undelivered rows, oldest first.
        Index(
            "outbox_undelivered_idx",
            "seq",
            postgresql_where=text("delivered_at IS NULL"),
        ),
        Index(
            "outbox_undispatched_idx",
            "seq",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        # Pruning: delivered rows past the retention, oldest first.
        Index(
            "outbox_delivered_at_idx",
            "delivered_at",
            postgresql_where=text("delivered_at IS NOT NULL"),
        ),
        Index("outbox_aggregate_seq_idx", "aggregate_type", "aggregate_id", "seq"),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.EVENT), primary_key=True)
    # Commit-independent total order for delivery; ids alone are only ordered per process.
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True),
    )
    type: str = Field(max_length=100, index=True)
    aggregate_type: str = Field(max_length=40)
    aggregate_id: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = created_at_field()
    # Set when the relay has fanned the event out to its subscribers' deliveries.
    dispatched_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Set once every subscriber has it (delivered, or dropped with its subscriber).
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # The W3C traceparent of the request or activity that wrote the event (None outside
    # any trace): its deliveries' spans join that trace.
    traceparent: str | None = Field(default=None, max_length=55)
