"""What the relay records about delivering the outbox.

``EventReceipt`` is the idempotency ledger: one row per (event, subscriber) whose handler
has run, written in the handler's own transaction. ``EventDelivery`` is the relay's work
list: one row per (event, subscriber) the event was fanned out to, with its status.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, String, Text, text
from sqlmodel import Field, SQLModel

from models.base import created_at_field, updated_at_field


class EventReceipt(SQLModel, table=True):
    __tablename__ = "event_receipts"

    # Pruning an outbox row takes its receipts with it: a pruned event is never redelivered.
    event_id: str = Field(
        sa_column=Column(String, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    )
    subscriber: str = Field(max_length=64, primary_key=True)
    handled_at: datetime = created_at_field()


class DeliveryStatus(StrEnum):
    # Waiting for earlier events of its aggregate, or being delivered (``started_at`` set).
    PENDING = "pending"
    DELIVERED = "delivered"
    # A dead letter: a business error, or retries ran out. ``last_error`` says why.
    FAILED = "failed"
    # No live worker has known its subscriber (for its event type) for
    # EVENT_SUBSCRIBER_GRACE_SECONDS: taken out of the code. Logged, never retried.
    DROPPED = "dropped"


class EventDelivery(SQLModel, table=True):
    """One (event, subscriber) delivery: the relay's work list and the dead-letter queue."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        # "Is an earlier event of this aggregate still waiting for this subscriber?"
        Index(
            "event_deliveries_pending_aggregate_idx",
            "subscriber",
            "aggregate_type",
            "aggregate_id",
            "seq",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("event_deliveries_status_created_at_idx", "status", "created_at"),
    )

    event_id: str = Field(
        sa_column=Column(String, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    )
    subscriber: str = Field(max_length=64, primary_key=True)
    event_type: str = Field(max_length=100)
    aggregate_type: str = Field(max_length=40)
    aggregate_id: str = Field(max_length=64)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING,
        sa_column=Column(String(16), nullable=False, server_default="pending"),
    )
    # Bumped by each replay; part of the delivery workflow's id, so a replay is a new run.
    generation: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
    # When its delivery workflow was started (NULL: not started yet, e.g. held back).
    started_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The workflow delivering its current generation (an ``EventFanoutWorkflow``, with the
    # event's other subscribers started in the same relay pass); NULL until started, and
    # for deliveries started by the one-subscriber workflow before ids were recorded.
    workflow_id: str | None = Field(default=None, max_length=200)
    updated_at: datetime = updated_at_field()


class EventSubscription(SQLModel, table=True):
    """A (subscriber, event type) some relay knows, and when one last said so.

    Every relay writes the pairs of its own code at least every
    ``EVENT_RELAY_POLL_SECONDS``. Workers of several versions side by side (a rolling
    deploy) therefore share what each knows: the fan-out writes deliveries for every pair
    known within the grace, whichever relay dispatches, and a pending delivery is dropped
    only once no relay has known its pair for ``EVENT_SUBSCRIBER_GRACE_SECONDS``.
    """

    __tablename__ = "event_subscriptions"

    subscriber: str = Field(max_length=64, primary_key=True)
    event_type: str = Field(max_length=100, primary_key=True)
    first_known_at: datetime = created_at_field()
    known_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
