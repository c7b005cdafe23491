"""email_messages.attempted_at: when the message was last handed to the provider, so a
retry whose earlier outcome is unknown waits for the provider's activity feed to show
that attempt before sending again

Revision ID: a7c0de140017
Revises: a7c0de140016
Create Date: 2026-12-06 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140017"
down_revision: str | None = "a7c0de140016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing. Rows from before count as
    # attempted long ago (their retry asks the feed and sends, as before).
    op.add_column(
        "email_messages", sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("email_messages", "attempted_at")
