"""outbox and workflow_starts traceparent: the W3C trace context of the request or
activity that wrote the event (its deliveries join that trace) or asked for the start
(a start the relay makes later joins it)

Revision ID: a7c0de140016
Revises: a7c0de140015
Create Date: 2026-12-06 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140016"
down_revision: str | None = "a7c0de140015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing (a catalogue change only).
    for table in ("outbox", "workflow_starts"):
        op.add_column(table, sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    for table in ("workflow_starts", "outbox"):
        op.drop_column(table, "traceparent")
