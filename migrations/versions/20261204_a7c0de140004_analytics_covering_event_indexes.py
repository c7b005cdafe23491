"""analytics: covering indexes for funnels and retention, read index-only: (event,
created_at) INCLUDE (person_id) and (person_id, created_at) INCLUDE (event), in place of
the plain ones of the same names; autovacuum after every 100,000 new events, so the
recent pages those scans read are marked all-visible

Revision ID: a7c0de140004
Revises: a7c0de140003
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140004"
down_revision: str | None = "a7c0de140003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "analytics_events"
# name: (key columns, included column)
INDEXES = {
    "analytics_events_event_created_at_idx": (["event", "created_at"], "person_id"),
    "analytics_events_person_id_created_at_idx": (["person_id", "created_at"], "event"),
}


def _replace(name: str, columns: list[str], include: list[str]) -> None:
    """Build the new index beside the old one, then swap: reads keep an index throughout."""
    op.create_index(f"{name}_new", TABLE, columns, postgresql_include=include)
    op.drop_index(name, table_name=TABLE)
    op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


# An index-only scan still reads the table for a page not yet marked all-visible, which a
# vacuum does. PostgreSQL's default vacuums an insert-only table after inserts of 20 % of
# its size (2 million rows at 10 million): the last days, the very pages a 7-day funnel
# reads, would wait that long. A fixed threshold keeps them marked within minutes.
VACUUM_EVERY = 100_000


def upgrade() -> None:
    for name, (columns, included) in INDEXES.items():
        _replace(name, columns, [included])
    op.execute(
        f"ALTER TABLE {TABLE} SET (autovacuum_vacuum_insert_threshold = {VACUUM_EVERY}, "
        "autovacuum_vacuum_insert_scale_factor = 0)"
    )


def downgrade() -> None:
    op.execute(
        f"ALTER TABLE {TABLE} RESET (autovacuum_vacuum_insert_threshold, "
        "autovacuum_vacuum_insert_scale_factor)"
    )
    for name, (columns, _) in INDEXES.items():
        _replace(name, columns, [])
