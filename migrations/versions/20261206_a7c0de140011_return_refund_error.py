"""returns: ``refund_error``, why Stripe refused the return's refund (set when the refund
is refused for good, ``payment_not_refundable``), and ``settlement_note``, what staff
wrote when they settled such a return by hand (``POST /api/admin/returns/{id}/settle``).

Revision ID: a7c0de140011
Revises: a7c0de140010
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140011"
down_revision: str | None = "a7c0de140010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("returns", sa.Column("refund_error", sa.Text(), nullable=True))
    op.add_column("returns", sa.Column("settlement_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("returns", "settlement_note")
    op.drop_column("returns", "refund_error")
