"""workflow_starts.start_signal: signal-with-start rows (the cart reminder)

Revision ID: 5b7e0c9d4a21
Revises: 7a210e88e261
Create Date: 2026-12-02 18:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "5b7e0c9d4a21"
down_revision: str | None = "7a210e88e261"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "workflow_starts",
        sa.Column("start_signal", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("workflow_starts", "start_signal")
