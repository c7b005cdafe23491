"""event_subscriptions: the (subscriber, event type) pairs relays know, and when one last
said so. Workers of two versions side by side (a rolling deploy) share what each knows:
a delivery is dropped only once no relay has known its pair for the grace period.

Revision ID: a7c0de140019
Revises: a7c0de140018
Create Date: 2026-12-06 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "a7c0de140019"
down_revision: str | None = "a7c0de140018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_subscriptions",
        sa.Column("subscriber", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "first_known_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "known_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("subscriber", "event_type", name=op.f("event_subscriptions_pkey")),
    )


def downgrade() -> None:
    op.drop_table("event_subscriptions")
