"""Customer lifetime value: the ledger every total is explained by.

One ``lifetime_value_entries`` row per event that changed what a customer's orders
count: ``order`` (+ total, one more order), ``refund`` (minus what was refunded, capped at
what the order still counts), ``cancellation`` (minus what the order still counts, one
order fewer) and ``refund_failed`` (plus what a refund that bounced gave back, capped at
what refunds and the cancellation had taken out). The event id is the key, so an event
is entered at most once; an order has at most one ``order`` and one ``cancellation``
entry, so a replayed or duplicated event of either kind enters nothing. The totals on
``users`` are sums of this ledger.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, String
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class LedgerKind(StrEnum):
    ORDER = "order"
    REFUND = "refund"
    CANCELLATION = "cancellation"
    REFUND_FAILED = "refund_failed"


class LifetimeValueEntry(SQLModel, table=True):
    __tablename__ = "lifetime_value_entries"
    __table_args__ = (
        Index(
            "lifetime_value_entries_one_order_idx",
            "order_id",
            unique=True,
            postgresql_where=sql_text("kind = 'order'"),
        ),
        Index(
            "lifetime_value_entries_one_cancellation_idx",
            "order_id",
            unique=True,
            postgresql_where=sql_text("kind = 'cancellation'"),
        ),
        CheckConstraint(
            "kind IN ('order', 'refund', 'cancellation', 'refund_failed')", name="kind_known"
        ),
        CheckConstraint("orders_delta BETWEEN -1 AND 1", name="orders_delta_unit"),
    )

    # The outbox event that made the entry. No foreign key: outbox rows are pruned after
    # OUTBOX_RETENTION_DAYS and the ledger outlives them.
    event_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(
        sa_column=Column(
            String, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    order_id: str = Field(
        sa_column=Column(
            String, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    kind: LedgerKind = Field(sa_column=Column(String(16), nullable=False))
    # Signed minor units of ``currency``: positive for an order or a refund that failed,
    # negative otherwise.
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    # +1 for a counted order, -1 for the cancellation of a counted one, else 0.
    orders_delta: int = Field(default=0)
    # When it happened: the event's time (the outbox row's created_at).
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = created_at_field()
