"""webhooks: a delivery may be ``skipped``, recorded for an endpoint that was disabled
when the event came (not attempted; staff recover it with ``retry-failed``), and a partial
index on those rows' ``created_at`` for the pruning of the ones never recovered.

Revision ID: a7c0de140025
Revises: a7c0de140024
Create Date: 2026-12-07 05:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140025"
down_revision: str | None = "a7c0de140024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "status IN ('pending', 'delivered', 'failed', 'skipped')"
OLD_STATUSES = "status IN ('pending', 'delivered', 'failed')"


def upgrade() -> None:
    # Autogenerate does not see CHECK constraints; written by hand.
    op.drop_constraint("status", "webhook_deliveries", type_="check")
    op.create_check_constraint("status", "webhook_deliveries", STATUSES)
    op.create_index(
        "webhook_deliveries_skipped_created_at_idx",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=sa.text("status = 'skipped'"),
    )


def downgrade() -> None:
    op.drop_index("webhook_deliveries_skipped_created_at_idx", table_name="webhook_deliveries")
    # Before this revision a skipped delivery had no status; failed (with its reason) is
    # what staff still retry there, so none is lost.
    op.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'skipped'")
    op.drop_constraint("status", "webhook_deliveries", type_="check")
    op.create_check_constraint("status", "webhook_deliveries", OLD_STATUSES)
