"""order_events.key: a timeline entry that a retried step may write again (its first
write's answer lost, the entry committed) carries a key of what it is about, unique per
order, and is written once (``OrderRepository.add_event(key=…)``, ON CONFLICT DO NOTHING).
Unkeyed entries (NULL) are unaffected; the partial index holds only the keyed ones.

Revision ID: a7c0de140021
Revises: a7c0de140020
Create Date: 2026-12-07 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "a7c0de140021"
down_revision: str | None = "a7c0de140020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: no table rewrite. The index starts empty (no row has a key).
    op.add_column(
        "order_events",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    )
    op.create_index(
        "order_events_order_id_key_idx",
        "order_events",
        ["order_id", "key"],
        unique=True,
        postgresql_where=sa.text("key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "order_events_order_id_key_idx",
        table_name="order_events",
        postgresql_where=sa.text("key IS NOT NULL"),
    )
    op.drop_column("order_events", "key")
