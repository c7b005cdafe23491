"""Outgoing webhook deliveries: one per (event, endpoint), each send attempt recorded.

Written by the ``webhooks`` relay subscriber; sent by ``WebhookDeliveryWorkflow``; seen
by operators at ``/api/admin/webhooks/{id}/deliveries``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field as PydanticField
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import CamelModel, created_at_field, one_of


class WebhookStatus(StrEnum):
    PENDING = "pending"  # being sent (or waiting for a retry): never pruned
    # The endpoint answered 2xx; pruned WEBHOOK_DELIVERY_RETENTION_DAYS after that.
    DELIVERED = "delivered"
    # A permanent 4xx, or the retries ran out: ``last_error`` says why. Staff's to read
    # and retry: pruned only WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS after it failed.
    FAILED = "failed"
    # Never attempted: its endpoint was disabled when the event came (``last_error``
    # ``endpoint_disabled: …``). Kept so staff recover it (``retry-failed``) once the
    # endpoint is enabled again; pruned with the outbox after OUTBOX_RETENTION_DAYS.
    SKIPPED = "skipped"


# The reason a skipped delivery carries in ``last_error`` (a code, as a failure's does).
SKIPPED_ENDPOINT_DISABLED = "endpoint_disabled: the endpoint was disabled when the event came"


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One per (event, endpoint): a redelivered event records nothing twice.
        UniqueConstraint(
            "event_id", "endpoint_id", name="webhook_deliveries_event_id_endpoint_id_key"
        ),
        CheckConstraint(one_of("status", WebhookStatus), name="status"),
        # An endpoint's deliveries, newest first.
        Index("webhook_deliveries_endpoint_id_id_idx", "endpoint_id", "id"),
        # The pruning's finished deliveries of a status past its retention, oldest first
        # (pending ones, never pruned, have no ``finished_at``: left out).
        Index(
            "webhook_deliveries_status_finished_at_idx",
            "status",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
    )

    # Also the ``webhook-id`` header: the same for every attempt and retry.
    id: str = Field(default_factory=lambda: new_id(IdPrefix.WEBHOOK_DELIVERY), primary_key=True)
    endpoint_id: str = Field(
        sa_column=Column(
            String, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
        )
    )
    # The outbox event (no foreign key: the outbox is pruned).
    event_id: str = Field(max_length=40)
    event_type: str = Field(max_length=60)
    # The envelope sent, frozen when recorded: every attempt sends the same body.
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(default=WebhookStatus.PENDING, max_length=20)
    # Bumped by an operator's retry: a late attempt of an older run changes nothing.
    generation: int = 0
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("webhook_attempts_delivery_id_id_idx", "delivery_id", "id"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.WEBHOOK_ATTEMPT), primary_key=True)
    delivery_id: str = Field(
        sa_column=Column(
            String, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        )
    )
    generation: int
    succeeded: bool
    # None: no answer (timeout, connection refused).
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: int
    created_at: datetime = created_at_field()


class WebhookAttemptPublic(CamelModel):
    id: str
    succeeded: bool
    status_code: int | None = PydanticField(examples=[500])
    error: str | None = PydanticField(examples=["HTTP 500: upstream down"])
    duration_ms: int = PydanticField(examples=[42])
    created_at: datetime


class WebhookDeliveryPublic(CamelModel):
    """One (event, endpoint) delivery and its attempts, oldest attempt first."""

    id: str = PydanticField(description="Also the `webhook-id` header")
    endpoint_id: str
    event_id: str
    event_type: str = PydanticField(examples=["order.created"])
    status: WebhookStatus
    generation: int
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[WebhookAttemptPublic] = PydanticField(alias="attemptLog")

    @classmethod
    def of(cls, row: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryPublic:
        """The row's public fields, read by name, with its attempts."""
        log = [WebhookAttemptPublic.model_validate(a, from_attributes=True) for a in attempts]
        return cls.model_validate({**row.model_dump(), "attempt_log": log})


class WebhookRetriedFailed(CamelModel):
    """What ``retry-failed`` sent again."""

    retried: int = PydanticField(
        description="Failed and skipped deliveries now pending again (a new generation each)",
        examples=[12],
    )
    more: bool = PydanticField(
        description="Failed or skipped ones are left (at most 100 a call): call again",
        examples=[False],
    )
