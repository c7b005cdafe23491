"""analytics: ``analytics_event_links``, each event with its person's event just before
it (name, time, id), filled from every event here and kept by the hourly rollup, so that
a ``strict`` funnel reads a step's events with what preceded each, index-only through
``(event, created_at) INCLUDE (person_id, id, prev_event, prev_at, prev_id)``, instead of
one backward probe of the person's events per step event

Revision ID: a7c0de140009
Revises: a7c0de140007
Create Date: 2026-12-06 01:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140009"
down_revision: str | None = "a7c0de140007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "analytics_event_links"
# Every event's link at once: one pass over the person index in (person, time, id) order,
# no sort. The index is built after the rows, faster than kept up row by row.
FILL = f"""
INSERT INTO {TABLE} (id, person_id, event, created_at, prev_event, prev_at, prev_id)
SELECT id, person_id, event, created_at,
  lag(event) OVER w, lag(created_at) OVER w, lag(id) OVER w
FROM analytics_events
WINDOW w AS (PARTITION BY person_id ORDER BY created_at, id)
"""
# As for the events (a7c0de140004): vacuumed after every 100,000 new rows, so that the
# recent pages a funnel reads are all-visible and read index-only.
VACUUM_EVERY = 100_000


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(110), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_event", sa.String(100), nullable=True),
        sa.Column("prev_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("prev_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("analytics_event_links_pkey")),
    )
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    op.execute(FILL)
    op.create_index(
        "analytics_event_links_event_created_at_idx",
        TABLE,
        ["event", "created_at"],
        postgresql_include=["person_id", "id", "prev_event", "prev_at", "prev_id"],
    )
    op.execute(
        f"ALTER TABLE {TABLE} SET (autovacuum_vacuum_insert_threshold = {VACUUM_EVERY}, "
        "autovacuum_vacuum_insert_scale_factor = 0)"
    )


def downgrade() -> None:
    op.drop_table(TABLE)
