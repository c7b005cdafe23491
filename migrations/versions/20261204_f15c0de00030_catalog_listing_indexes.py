"""catalogue: partial covering indexes for listings, (category_id, price) INCLUDE the
sort columns and (created_at, id), both of active, undeleted products only, so a filtered
listing's count and page ids are read from the index alone

Revision ID: f15c0de00030
Revises: f15c0de00020
Create Date: 2026-12-04 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f15c0de00030"
down_revision: str | None = "f15c0de00020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "products"
LISTED = sa.text("active AND deleted_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "products_listing_category_price_idx",
        TABLE,
        ["category_id", "price"],
        postgresql_include=["id", "created_at", "rating_sum", "rating_count"],
        postgresql_where=LISTED,
    )
    op.create_index(
        "products_listing_created_at_idx",
        TABLE,
        ["created_at", "id"],
        postgresql_where=LISTED,
    )


def downgrade() -> None:
    op.drop_index("products_listing_created_at_idx", table_name=TABLE)
    op.drop_index("products_listing_category_price_idx", table_name=TABLE)
