"""Analytics events (product_view, add_to_cart, …, user_created, custom) and the links
from anonymous ids to the users they turned out to be."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import created_at_field, utcnow

# The seed's funnel, in order, and every event it names; custom events match EVENT_NAME.
FUNNEL_STEPS = ("product_view", "add_to_cart", "checkout_start", "payment_start", "order_complete")
SEED_EVENTS = (*FUNNEL_STEPS, "product_search", "user_created")
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


def person_key(
    user_id: str | None, anonymous_id: str | None, session_id: str | None, event_id: str
) -> str:
    """Whom an event counts for: the user, else the anonymous id (or the guest session),
    else the event alone. Sign-in rewrites ``anon:`` keys to the user (identity link)."""
    if user_id:
        return user_id
    if anonymous_id:
        return f"anon:{anonymous_id}"
    if session_id:
        return f"anon:{session_id}"
    return f"ae:{event_id}"


class AnalyticsEvent(SQLModel, table=True):
    """One event. ``created_at`` is when it happened (the client's ``timestamp`` when
    within ±24 h, else the server's time); ``received_at`` is when the server stored it,
    which is what rollups follow to correct an hour when a late event arrives."""

    __tablename__ = "analytics_events"
    __table_args__ = (
        # Covering: funnels and retention read (event, time, person) without the table,
        # with the id that orders a person's events of the same instant, and the source
        # a funnel broken down by source takes from each person's entry event.
        Index(
            "analytics_events_event_created_at_idx",
            "event",
            "created_at",
            postgresql_include=["person_id", "id", "source"],
        ),
        # The same for a funnel broken down by category: the entry event's ids, index-only.
        Index(
            "analytics_events_event_category_idx",
            "event",
            "created_at",
            postgresql_include=["person_id", "id", "category_id", "product_id"],
        ),
        # Covering: strict funnels and step windows walk each person's events in time
        # (and id) order without the table; the rollup reads an hour's people by time.
        Index(
            "analytics_events_created_at_idx",
            "created_at",
            postgresql_include=["person_id", "event", "id"],
        ),
        Index("analytics_events_received_at_idx", "received_at"),
        # A person's events in (time, id) order: the funnel's probe for the event just
        # before a step's event reads one index entry backwards.
        Index(
            "analytics_events_person_id_created_at_idx",
            "person_id",
            "created_at",
            "id",
            postgresql_include=["event"],
        ),
        Index(
            "analytics_events_anonymous_id_idx",
            "anonymous_id",
            postgresql_where=text("anonymous_id IS NOT NULL"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id(IdPrefix.ANALYTICS), primary_key=True)
    event: str = Field(max_length=100)
    user_id: str | None = Field(default=None, max_length=40, index=True)
    session_id: str | None = Field(default=None, max_length=100)
    anonymous_id: str | None = Field(default=None, max_length=100)
    person_id: str = Field(max_length=110)
    page: str | None = Field(default=None, max_length=2048)
    referrer: str | None = Field(default=None, max_length=2048)
    properties: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    # The funnel's breakdown inputs, set by the database from ``properties`` and
    # ``referrer`` on every insert (trigger ``analytics_events_breakdown``, migration
    # a7c0de140012), whatever a writer sends: ``source`` is ``utm_source``, else the
    # referrer's host, else ``direct`` (lower-cased); the two ids as the properties
    # name them (``categoryId``, ``productId``).
    source: str | None = Field(default=None)
    category_id: str | None = Field(default=None)
    product_id: str | None = Field(default=None)
    created_at: datetime = created_at_field()
    received_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now(), "nullable": False},
    )


class AnalyticsEventLink(SQLModel, table=True):
    """Each event with the event of its person just before it (in (time, id) order; the
    ``prev_*`` columns are null for a person's first event), kept by the hourly rollup
    (``services/analytics/links.py``): a ``strict`` funnel reads a step's events with
    their previous event here instead of probing the person's events for each."""

    __tablename__ = "analytics_event_links"
    __table_args__ = (
        # Covering: a step's events over a range, with what came before each, index-only.
        Index(
            "analytics_event_links_event_created_at_idx",
            "event",
            "created_at",
            postgresql_include=["person_id", "id", "prev_event", "prev_at", "prev_id"],
        ),
    )

    id: str = Field(primary_key=True)
    person_id: str = Field(max_length=110)
    event: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    prev_event: str | None = Field(default=None, max_length=100)
    prev_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    prev_id: str | None = Field(default=None)


class AnalyticsIdentity(SQLModel, table=True):
    """An anonymous id that signed in as ``user_id``: its events count for the user."""

    __tablename__ = "analytics_identities"

    anonymous_id: str = Field(primary_key=True, max_length=100)
    user_id: str = Field(max_length=40, index=True)
    linked_at: datetime = created_at_field()
