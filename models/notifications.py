"""A customer's notifications: what happened to their orders, parcels and returns.

Written by the ``notifications`` relay subscriber (``services/events/handlers/
notifications.py``), one per (event, user); read at ``/api/notifications`` and pushed
live at ``/api/events/stream``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import CamelModel, Page, RequestModel, created_at_field


class NotificationKind(StrEnum):
    ORDER_CONFIRMED = "order_confirmed"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_FAILED = "order_failed"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_REFUNDED = "payment_refunded"
    REFUND_FAILED = "refund_failed"
    SHIPMENT_SHIPPED = "shipment_shipped"
    ORDER_DELIVERED = "order_delivered"
    RETURN_RECEIVED = "return_received"
    RETURN_REFUNDED = "return_refunded"


class Notification(SQLModel, table=True):
    __tablename__ = "notifications"
    __table_args__ = (
        # A redelivered event writes nothing twice.
        UniqueConstraint("event_id", "user_id", name="notifications_event_id_user_id_key"),
        # A user's newest first, read backwards (ids are ULIDs, and the subscriber writes
        # a user's in increasing order: see NotificationRepository.add).
        Index("notifications_user_id_id_idx", "user_id", "id"),
        # The unread count and the unread filter.
        Index(
            "notifications_user_id_unread_idx",
            "user_id",
            "id",
            postgresql_where=text("read_at IS NULL"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.NOTIFICATION), primary_key=True)
    user_id: str = Field(
        sa_column=Column(String, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(max_length=40)
    title: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    data: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    # The outbox event it was written for (no foreign key: the outbox is pruned).
    event_id: str = Field(max_length=40)
    created_at: datetime = created_at_field()
    read_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class NotificationPublic(CamelModel):
    id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, row: Notification) -> NotificationPublic:
        return cls(
            id=row.id,
            kind=row.kind,
            title=row.title,
            body=row.body,
            data=row.data,
            created_at=row.created_at,
            read_at=row.read_at,
        )


class NotificationPage(Page[NotificationPublic]):
    """A page of the caller's notifications, and how many of all of them are unread."""

    unread_count: int


class ReadAllRequest(RequestModel):
    up_to: str | None = Field(
        default=None,
        max_length=100,
        description="The newest notification the caller has seen (the first of the list, "
        "the last one streamed): only it and older ones are marked read, not one that "
        "came since. Without it, every unread one.",
    )


class ReadAllResult(CamelModel):
    """How many notifications ``read-all`` marked read (0 when none was unread)."""

    marked: int
    unread_count: int = Field(description="How many are still unread (newer than `upTo`)")
