"""orders.expected_total: the total the shopper was shown (``expectedTotal`` on POST
/api/orders), which validate-order holds the order to (``price_changed``).

Revision ID: a7c0de140022
Revises: a7c0de140021
Create Date: 2026-12-07 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140022"
down_revision: str | None = "a7c0de140021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a catalogue-only change, no table rewrite.
    op.add_column("orders", sa.Column("expected_total", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "expected_total")
