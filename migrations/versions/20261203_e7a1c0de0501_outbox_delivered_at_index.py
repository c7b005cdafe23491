"""outbox: an index on delivered_at, for pruning delivered rows

Revision ID: e7a1c0de0501
Revises: e7a1c0de0003
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e7a1c0de0501"
down_revision: str | None = "e7a1c0de0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "outbox_delivered_at_idx",
        "outbox",
        ["delivered_at"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "outbox_delivered_at_idx",
        table_name="outbox",
        postgresql_where=sa.text("delivered_at IS NOT NULL"),
    )
