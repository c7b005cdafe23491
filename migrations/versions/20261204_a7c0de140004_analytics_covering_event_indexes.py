"""analytics: covering indexes for funnels and retention, read index-only: (event,
created_at) INCLUDE (person_id) and (person_id, created_at) INCLUDE (event), in place of
the plain ones of the same names

Revision ID: a7c0de140004
Revises: a7c0de140002
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140004"
down_revision: str | None = "a7c0de140002"
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


def upgrade() -> None:
    for name, (columns, included) in INDEXES.items():
        _replace(name, columns, [included])


def downgrade() -> None:
    for name, (columns, _) in INDEXES.items():
        _replace(name, columns, [])
