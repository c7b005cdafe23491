"""webhook endpoints: a rotated secret's predecessor stays valid until
``previous_secret_expires_at`` (deliveries carry both signatures meanwhile); each
endpoint counts its consecutive failed deliveries since ``failing_since`` and is
disabled (``disabled_at``, ``disabled_reason``) when they are too many for too long

Revision ID: a7c0de140015
Revises: a7c0de140014
Create Date: 2026-12-06 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140015"
down_revision: str | None = "a7c0de140014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("previous_secret", sa.Text(), nullable=True))
    op.add_column(
        "webhook_endpoints",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "webhook_endpoints", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("webhook_endpoints", sa.Column("disabled_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "disabled_reason")
    op.drop_column("webhook_endpoints", "disabled_at")
    op.drop_column("webhook_endpoints", "failing_since")
    op.drop_column("webhook_endpoints", "consecutive_failures")
    op.drop_column("webhook_endpoints", "previous_secret_expires_at")
    op.drop_column("webhook_endpoints", "previous_secret")
