"""outbox traceparent: the W3C trace context of the request or activity that wrote the
event, so that the relay's deliveries of it join that trace

Revision ID: a7c0de140015
Revises: a7c0de140014
Create Date: 2026-12-06 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140015"
down_revision: str | None = "a7c0de140014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing (a catalogue change only).
    op.add_column("outbox", sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
