"""Objects of the EasyPost sandbox (shipments, trackers), stored as EasyPost shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import created_at_field


class SandboxEasyPostObject(SQLModel, table=True):
    __tablename__ = "sandbox_easypost_objects"

    id: str = Field(primary_key=True, max_length=64)  # shp_…, trk_…
    kind: str = Field(max_length=32, index=True)  # shipment, tracker
    # Creation order, for newest-first lists.
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True),
    )
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # Trackers: when the tracker last moved; auto-advance steps it on from there. Null
    # once it can move no further (delivered, returned, failed, cancelled) and for shipments.
    advanced_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True, index=True)
    )
    created_at: datetime = created_at_field()
