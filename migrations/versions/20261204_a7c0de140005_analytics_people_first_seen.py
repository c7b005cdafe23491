"""analytics: each person's first event (``analytics_people.first_seen_at``), kept by the
hourly rollup, so that retention by first visit reads cohorts from it and daily activity
from the per-day people bitmaps instead of every event of the range; filled here from
the events already rolled up

Revision ID: a7c0de140005
Revises: a7c0de140004
Create Date: 2026-12-04 20:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140005"
down_revision: str | None = "a7c0de140004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "analytics_people"
INDEX = "analytics_people_first_seen_at_idx"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE analytics_people p SET first_seen_at = f.first_at
        FROM (SELECT person_id, min(created_at) AS first_at FROM analytics_events
              GROUP BY person_id) f
        WHERE f.person_id = p.person_id
        """
    )
    # Retention reads a range of first visits with the people's numbers: index-only.
    op.create_index(INDEX, TABLE, ["first_seen_at"], postgresql_include=["number"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.drop_column(TABLE, "first_seen_at")
