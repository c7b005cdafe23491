"""workflow_starts.signal_only: a signal owed to a running workflow, never a start (a
parcel's ``retry_label`` after staff corrected its address: recorded with the correction,
sent after the commit or by the relay)

Revision ID: a7c0de140018
Revises: a7c0de140017
Create Date: 2026-12-06 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140018"
down_revision: str | None = "a7c0de140017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds it without rewriting the table.
    op.add_column(
        "workflow_starts",
        sa.Column("signal_only", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("workflow_starts", "signal_only")
