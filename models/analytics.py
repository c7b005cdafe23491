"""Analytics events (product_view, add_to_cart, …, user_created, custom)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import created_at_field


class AnalyticsEvent(SQLModel, table=True):
    __tablename__ = "analytics_events"
    __table_args__ = (Index("analytics_events_event_created_at_idx", "event", "created_at"),)

    id: str = Field(default_factory=lambda: new_id(IdPrefix.ANALYTICS), primary_key=True)
    event: str = Field(max_length=100)
    user_id: str | None = Field(default=None, max_length=40, index=True)
    session_id: str | None = Field(default=None, max_length=100)
    properties: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    created_at: datetime = created_at_field()
