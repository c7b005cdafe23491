"""outbox.aggregate_type: events are ordered per (aggregate_type, aggregate_id)

Revision ID: e7a1c0de0001
Revises: 5b7e0c9d4a21
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "e7a1c0de0001"
down_revision: str | None = "5b7e0c9d4a21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("aggregate_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    )
    # Rows written before the catalogue: payment and fulfilment events belong to orders.
    op.execute(
        """
        UPDATE outbox SET aggregate_type = CASE split_part(type, '.', 1)
            WHEN 'payment' THEN 'order'
            WHEN 'fulfillment' THEN 'order'
            WHEN 'inventory' THEN 'product'
            ELSE split_part(type, '.', 1) END
        """
    )
    op.alter_column("outbox", "aggregate_type", nullable=False)
    op.drop_index("outbox_aggregate_id_seq_idx", table_name="outbox")
    op.create_index("outbox_aggregate_seq_idx", "outbox", ["aggregate_type", "aggregate_id", "seq"])


def downgrade() -> None:
    op.drop_index("outbox_aggregate_seq_idx", table_name="outbox")
    op.create_index("outbox_aggregate_id_seq_idx", "outbox", ["aggregate_id", "seq"])
    op.drop_column("outbox", "aggregate_type")
