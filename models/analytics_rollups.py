"""Hourly analytics rollups, the dashboard's only source (``services/analytics/rollups.py``
keeps them; each hour is recomputed whole from raw rows whenever something in it changes).

Distinct people over any range stay exact: every person gets a dense ``number`` in
``analytics_people``, and each (hour, event) row keeps the set of its people as a
zlib-compressed bitmap of those numbers; a range's people are the union of its days' and
edge hours' bitmaps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Integer, LargeBinary
from sqlmodel import Field, SQLModel

# The rollup row of "any event" (event names start with a letter, so no clash).
ANY_EVENT = "*"


def _hour() -> datetime:
    field: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    return field


class AnalyticsPerson(SQLModel, table=True):
    """A person's dense number, when their first event happened (``first_seen_at``: the
    earliest ``created_at`` of their events) and their first order (``first_order_at``:
    the earliest ``order_complete``), both kept by the hourly rollup."""

    __tablename__ = "analytics_people"
    __table_args__ = (
        Index(
            "analytics_people_first_seen_at_idx",
            "first_seen_at",
            postgresql_include=["number"],
        ),
        Index(
            "analytics_people_first_order_at_idx",
            "first_order_at",
            postgresql_include=["number"],
        ),
    )

    person_id: str = Field(primary_key=True, max_length=110)
    number: int | None = Field(
        default=None,
        sa_column=Column(Integer, Identity(always=True), nullable=False, unique=True),
    )
    first_seen_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    first_order_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class AnalyticsEventHour(SQLModel, table=True):
    """Events and people per (hour, event), and per hour for any event (``*``)."""

    __tablename__ = "analytics_event_hourly"

    hour: datetime = _hour()
    event: str = Field(primary_key=True, max_length=100)
    events: int
    people: int
    bitmap: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AnalyticsEventDay(SQLModel, table=True):
    """The same per UTC day (the union of its hours), so that long ranges read a row a
    day rather than 24."""

    __tablename__ = "analytics_event_daily"

    day: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    event: str = Field(primary_key=True, max_length=100)
    events: int
    people: int
    bitmap: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AnalyticsSalesHour(SQLModel, table=True):
    """Orders that count as sales, by the hour they were placed, per currency."""

    __tablename__ = "analytics_sales_hourly"

    hour: datetime = _hour()
    currency: str = Field(primary_key=True, max_length=3)
    orders: int
    revenue: int = Field(sa_column=Column(BigInteger, nullable=False))


class AnalyticsRefundHour(SQLModel, table=True):
    """Refunds by the hour they were made, per currency."""

    __tablename__ = "analytics_refund_hourly"

    hour: datetime = _hour()
    currency: str = Field(primary_key=True, max_length=3)
    refunds: int
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))


class AnalyticsProductViewHour(SQLModel, table=True):
    __tablename__ = "analytics_product_view_hourly"

    hour: datetime = _hour()
    product_id: str = Field(primary_key=True, max_length=40)
    views: int


class AnalyticsProductSalesHour(SQLModel, table=True):
    """Units, revenue (line totals) and orders per product, by the order's hour."""

    __tablename__ = "analytics_product_sales_hourly"

    hour: datetime = _hour()
    product_id: str = Field(primary_key=True, max_length=40)
    currency: str = Field(primary_key=True, max_length=3)
    units: int
    revenue: int = Field(sa_column=Column(BigInteger, nullable=False))
    orders: int


class AnalyticsProductViewDay(SQLModel, table=True):
    """Views per (UTC day, product): the sum of the day's hourly rows."""

    __tablename__ = "analytics_product_view_daily"

    day: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    product_id: str = Field(primary_key=True, max_length=40)
    views: int


class AnalyticsProductSalesDay(SQLModel, table=True):
    """Units, revenue and orders per (UTC day, product, currency): the day's hours summed
    (an order falls in one hour, so its orders add up)."""

    __tablename__ = "analytics_product_sales_daily"

    day: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    product_id: str = Field(primary_key=True, max_length=40)
    currency: str = Field(primary_key=True, max_length=3)
    units: int
    revenue: int = Field(sa_column=Column(BigInteger, nullable=False))
    orders: int


class AnalyticsRollupState(SQLModel, table=True):
    """How far the rollups have read: rows changed after ``watermark`` are not in yet.
    Beside it, an unfinished run's marks (``services/analytics/rollup_repository.py``):
    when it began, the end of the last day it recomputed, and (``position``) the last
    person it relinked."""

    __tablename__ = "analytics_rollup_state"

    name: str = Field(primary_key=True, max_length=40)
    watermark: datetime = Field(sa_type=DateTime(timezone=True))
    position: str | None = Field(default=None, max_length=110)
