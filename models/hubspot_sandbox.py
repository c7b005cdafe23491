"""Records of the HubSpot sandbox (contacts, deals, custom property definitions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import created_at_field, updated_at_field


class SandboxHubSpotObject(SQLModel, table=True):
    __tablename__ = "sandbox_hubspot_objects"

    # HubSpot's record ids are numbers (sent as strings); one sequence serves every type.
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), primary_key=True),
    )
    # ``contacts``, ``deals``, or ``properties/<objectType>`` for a property definition.
    object_type: str = Field(max_length=64, index=True)
    properties: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # Associated record ids by object type: ``{"contacts": ["1012"]}``.
    associations: dict[str, list[str]] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
