"""Workflow starts owed: written with the change that needs them, started after commit.

If Temporal is unreachable when the request commits, the row stays pending and the
relay (``WorkflowStartRelayWorkflow``, on a Temporal Schedule) starts it later.

A row with a ``start_signal`` is a signal-with-start that each change requests again
(the cart reminder): the row is reset to pending, ``created_at`` becomes the time of the
latest request, and a finished workflow with the id may run again. A ``signal_only`` row
is a signal owed to a running workflow that this row never starts (a parcel's
``retry_label``, its workflow started as a child): if the workflow has ended, the signal
has nobody to tell and the row is done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from core.telemetry import current_traceparent
from models.base import created_at_field


class WorkflowStart(SQLModel, table=True):
    __tablename__ = "workflow_starts"
    __table_args__ = (
        Index(
            "workflow_starts_pending_idx",
            "created_at",
            postgresql_where=text("started_at IS NULL"),
        ),
        # The retention's batches, oldest start first (``delete_started_before``).
        Index(
            "workflow_starts_started_idx",
            "started_at",
            "id",
            postgresql_where=text("started_at IS NOT NULL"),
        ),
        # An erasure's inputs naming the account (``blank_personal``).
        Index(
            "workflow_starts_user_idx",
            text("(input ->> 'user_id')"),
            postgresql_where=text("input ? 'user_id'"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.WORKFLOW_START), primary_key=True)
    workflow_type: str = Field(max_length=100)
    workflow_id: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    task_queue: str = Field(max_length=100)
    input: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    start_signal: str | None = Field(default=None, max_length=100)
    signal_only: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    created_at: datetime = created_at_field()
    started_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The W3C traceparent of the request or activity that asked for the start: a start
    # the relay makes later (Temporal was away) joins that trace.
    traceparent: str | None = Field(default_factory=current_traceparent, max_length=55)
