"""webhooks: finished deliveries are pruned after their status's retention (delivered:
``WEBHOOK_DELIVERY_RETENTION_DAYS``, failed: ``WEBHOOK_FAILED_DELIVERY_RETENTION_DAYS``,
skipped: ``OUTBOX_RETENTION_DAYS``), oldest ``finished_at`` first: one partial index on
``(status, finished_at)`` of the finished rows serves the three, replacing the one on
skipped rows' ``created_at`` (a skipped row's ``finished_at`` is its recording time).
Built concurrently: the table is the one that grew without bound, and the relay keeps
inserting into it meanwhile.

Revision ID: a7c0de140026
Revises: a7c0de140025
Create Date: 2026-12-07 07:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140026"
down_revision: str | None = "a7c0de140025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "webhook_deliveries"
FINISHED = "webhook_deliveries_status_finished_at_idx"
SKIPPED = "webhook_deliveries_skipped_created_at_idx"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            FINISHED,
            TABLE,
            ["status", "finished_at"],
            postgresql_where=sa.text("finished_at IS NOT NULL"),
            postgresql_concurrently=True,
        )
        op.drop_index(SKIPPED, table_name=TABLE, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            SKIPPED,
            TABLE,
            ["created_at"],
            postgresql_where=sa.text("status = 'skipped'"),
            postgresql_concurrently=True,
        )
        op.drop_index(FINISHED, table_name=TABLE, postgresql_concurrently=True)
