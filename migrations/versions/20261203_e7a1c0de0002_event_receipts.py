"""event_receipts: the (event, subscriber) pairs whose handler has run

Revision ID: e7a1c0de0002
Revises: e7a1c0de0001
Create Date: 2026-12-03 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "e7a1c0de0002"
down_revision: str | None = "e7a1c0de0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_receipts",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("subscriber", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "handled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbox.id"],
            name=op.f("event_receipts_event_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "subscriber", name=op.f("event_receipts_pkey")),
    )


def downgrade() -> None:
    op.drop_table("event_receipts")
