"""What the relay records about delivering the outbox.

``EventReceipt`` is the idempotency ledger: one row per (event, subscriber) whose handler
has run, written in the handler's own transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class EventReceipt(SQLModel, table=True):
    __tablename__ = "event_receipts"

    # Pruning an outbox row takes its receipts with it: a pruned event is never redelivered.
    event_id: str = Field(
        sa_column=Column(String, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    )
    subscriber: str = Field(max_length=64, primary_key=True)
    handled_at: datetime = created_at_field()
