"""lifetime_value_entries.kind may be ``refund_failed``: a refund that bounced at Stripe
(``payment.refund_failed``) gives the order back what it had taken out.

Revision ID: a7c0de140020
Revises: a7c0de140019
Create Date: 2026-12-06 23:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140020"
down_revision: str | None = "a7c0de140019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('order', 'refund', 'cancellation', 'refund_failed')"
OLD_KINDS = "kind IN ('order', 'refund', 'cancellation')"


def upgrade() -> None:
    # Autogenerate does not see CHECK constraints; written by hand.
    op.drop_constraint("kind_known", "lifetime_value_entries", type_="check")
    op.create_check_constraint("kind_known", "lifetime_value_entries", KINDS)


def downgrade() -> None:
    # Refused while ``refund_failed`` entries exist: they explain the users' totals, and
    # deleting them would leave totals no entry explains.
    op.drop_constraint("kind_known", "lifetime_value_entries", type_="check")
    op.create_check_constraint("kind_known", "lifetime_value_entries", OLD_KINDS)
