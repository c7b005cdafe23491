"""Marketing contacts we keep at the provider, and the SendGrid sandbox's marketing data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import CamelModel, created_at_field, updated_at_field


class MarketingContact(SQLModel, table=True):
    """An address we upserted as a marketing contact for a user, recorded (and committed)
    before the upsert is sent, so that one the provider kept while its answer was lost
    is here too.

    Erasing a user (``user.deleted``) anonymises the account before the event is
    handled, so the addresses to delete at the provider are read from here; the rows go
    with the erasure.
    """

    __tablename__ = "marketing_contacts"

    user_id: str = Field(
        sa_column=Column(
            String, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    email: str = Field(sa_column=Column(String(320), primary_key=True, nullable=False))
    synced_at: datetime = updated_at_field()


class SandboxMarketingRecord(SQLModel, table=True):
    """A custom field definition, list or contact held by the SendGrid sandbox, stored as
    SendGrid shows it. ``key`` is what SendGrid keeps unique per kind: the lower-cased
    name of a field or list, a contact's lower-cased email."""

    __tablename__ = "sandbox_marketing_records"
    __table_args__ = (UniqueConstraint("kind", "key", name="sandbox_marketing_records_kind_key"),)

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    key: str = Field(max_length=320)
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class SandboxContactView(CamelModel):
    """A contact as the sandbox holds it, with its lists and custom fields by name."""

    id: str
    email: str
    first_name: str | None
    last_name: str | None
    lists: list[str]
    custom_fields: dict[str, Any]
    created_at: str
    updated_at: str


class SandboxListView(CamelModel):
    id: str
    name: str
    contact_count: int
