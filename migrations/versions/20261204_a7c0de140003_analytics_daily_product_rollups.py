"""analytics: product views and product sales per UTC day too (the sums of their hours),
so that a dashboard over weeks reads a row a product a day, not 24; filled from the
hourly rows here, kept by the rollup service's day step from then on

Revision ID: a7c0de140003
Revises: a7c0de140002
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140003"
down_revision: str | None = "a7c0de140002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_product_view_daily",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "product_id", name=op.f("analytics_product_view_daily_pkey")
        ),
    )
    op.create_table(
        "analytics_product_sales_daily",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("product_id", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "product_id", "currency", name=op.f("analytics_product_sales_daily_pkey")
        ),
    )
    # The days of the hours already rolled up (an hour belongs to the UTC day it starts in).
    op.execute(
        "INSERT INTO analytics_product_view_daily (day, product_id, views) "
        "SELECT date_trunc('day', hour, 'UTC'), product_id, sum(views) "
        "FROM analytics_product_view_hourly GROUP BY 1, 2"
    )
    op.execute(
        "INSERT INTO analytics_product_sales_daily "
        "(day, product_id, currency, units, revenue, orders) "
        "SELECT date_trunc('day', hour, 'UTC'), product_id, currency, sum(units), "
        "sum(revenue), sum(orders) FROM analytics_product_sales_hourly GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    op.drop_table("analytics_product_sales_daily")
    op.drop_table("analytics_product_view_daily")
