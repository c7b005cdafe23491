"""Email ledger (idempotent sends) and the SendGrid sandbox's mailbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import CamelModel, created_at_field


class EmailStatus(StrEnum):
    PENDING = "pending"
    # A send was attempted and its outcome is not known (e.g. the response was lost).
    SENDING = "sending"
    SENT = "sent"


class EmailMessage(SQLModel, table=True):
    __tablename__ = "email_messages"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.MESSAGE), primary_key=True)
    # e.g. "welcome:user_01…": the same key never sends twice.
    idempotency_key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    template: str = Field(max_length=100)
    to_email: str = Field(max_length=320, index=True)
    subject: str = Field(max_length=300)
    status: EmailStatus = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0)
    provider_message_id: str | None = Field(default=None, max_length=200)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_at_field()
    # When it was last handed to the provider: a retry whose earlier outcome is unknown
    # sends again only once the provider's activity feed would show that attempt.
    attempted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    sent_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class SandboxEmail(SQLModel, table=True):
    """A message the SendGrid sandbox accepted: the local mailbox."""

    __tablename__ = "sandbox_emails"

    id: str = Field(primary_key=True, max_length=64)  # the X-Message-Id we answered
    to_emails: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    from_email: str = Field(max_length=320)
    subject: str = Field(max_length=998)
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    custom_args: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    received_at: datetime = created_at_field()


class MailboxMessage(CamelModel):
    id: str
    to: list[str]
    from_email: str
    subject: str
    text: str | None
    html: str | None
    custom_args: dict[str, Any]
    received_at: datetime
