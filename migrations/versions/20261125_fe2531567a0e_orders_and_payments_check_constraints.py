"""orders and payments check constraints

Revision ID: fe2531567a0e
Revises: 942044f7c8fb
Create Date: 2026-11-25 12:42:34.364624
"""

from collections.abc import Sequence

from alembic import op

revision: str = "fe2531567a0e"
down_revision: str | None = "942044f7c8fb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ORDER_STATUSES = (
    "status IN ('pending', 'reserved', 'requires_action', 'payment_authorized', "
    "'confirmed', 'fulfillment_queued', 'failed', 'cancelled')"
)
PAYMENT_STATUSES = (
    "status IN ('pending', 'requires_action', 'authorized', 'captured', 'voided', "
    "'refunded', 'partially_refunded', 'failed')"
)
PAYMENT_AMOUNTS = (
    "0 <= amount_refunded AND amount_refunded <= amount_captured AND amount_captured <= amount"
)


def upgrade() -> None:
    # Autogenerate does not see CHECK constraints; written by hand.
    op.create_check_constraint("status_known", "orders", ORDER_STATUSES)
    op.create_check_constraint("status_known", "payments", PAYMENT_STATUSES)
    op.create_check_constraint("amounts_consistent", "payments", PAYMENT_AMOUNTS)


def downgrade() -> None:
    op.drop_constraint("amounts_consistent", "payments", type_="check")
    op.drop_constraint("status_known", "payments", type_="check")
    op.drop_constraint("status_known", "orders", type_="check")
