"""analytics: hourly rollups (events and people, also per day; sales, refunds, product views and sales),
dense person numbers for exact distinct counts, and the rollups' watermark

Revision ID: a7c0de140002
Revises: a7c0de140001
Create Date: 2026-12-04 16:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140002"
down_revision: str | None = "a7c0de140001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hour() -> sa.Column[Any]:
    return sa.Column("hour", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "analytics_people",
        sa.Column("person_id", sa.String(110), nullable=False),
        sa.Column("number", sa.Integer(), sa.Identity(always=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("analytics_people_pkey")),
        sa.UniqueConstraint("number", name=op.f("analytics_people_number_key")),
    )
    op.create_table(
        "analytics_event_hourly",
        _hour(),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "event", name=op.f("analytics_event_hourly_pkey")),
    )
    op.create_table(
        "analytics_event_daily",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("day", "event", name=op.f("analytics_event_daily_pkey")),
    )
    op.create_table(
        "analytics_sales_hourly",
        _hour(),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "currency", name=op.f("analytics_sales_hourly_pkey")),
    )
    op.create_table(
        "analytics_refund_hourly",
        _hour(),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("refunds", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "currency", name=op.f("analytics_refund_hourly_pkey")),
    )
    op.create_table(
        "analytics_product_view_hourly",
        _hour(),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour", "product_id", name=op.f("analytics_product_view_hourly_pkey")
        ),
    )
    op.create_table(
        "analytics_product_sales_hourly",
        _hour(),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour", "product_id", "currency", name=op.f("analytics_product_sales_hourly_pkey")
        ),
    )
    op.create_table(
        "analytics_rollup_state",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("analytics_rollup_state_pkey")),
    )


def downgrade() -> None:
    for table in (
        "analytics_rollup_state",
        "analytics_product_sales_hourly",
        "analytics_product_view_hourly",
        "analytics_refund_hourly",
        "analytics_sales_hourly",
        "analytics_event_daily",
        "analytics_event_hourly",
        "analytics_people",
    ):
        op.drop_table(table)
