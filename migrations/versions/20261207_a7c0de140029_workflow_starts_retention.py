"""workflow starts: the indexes of their retention and of an erasure. Started rows are
deleted ``WORKFLOW_START_RETENTION_DAYS`` after they started, oldest first (a partial
index on ``(started_at, id)`` of the started rows), and an erasure blanks the person's
fields in the inputs naming the account (an index on the input's ``user_id``, of the
inputs that have one): without them each retention batch and each erasure read the
whole table. Built concurrently: every order, return and sign-up inserts into it.

Revision ID: a7c0de140029
Revises: a7c0de140028
Create Date: 2026-12-07 17:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140029"
down_revision: str | None = "a7c0de140028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "workflow_starts"
STARTED = "workflow_starts_started_idx"
USER = "workflow_starts_user_idx"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            STARTED,
            TABLE,
            ["started_at", "id"],
            postgresql_where=sa.text("started_at IS NOT NULL"),
            postgresql_concurrently=True,
        )
        op.create_index(
            USER,
            TABLE,
            [sa.text("(input ->> 'user_id')")],
            postgresql_where=sa.text("input ? 'user_id'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(USER, table_name=TABLE, postgresql_concurrently=True)
        op.drop_index(STARTED, table_name=TABLE, postgresql_concurrently=True)
