"""analytics: the events' person index keyed (person_id, created_at, id) INCLUDE (event),
so that the funnel finds the event just before a step's event (``strict``) or the latest
first-step event before it (step windows) with one backward probe, ties in id order; and
the (event, created_at) index carrying the id beside the person, so that a step's events
are read index-only with the id that orders events of the same instant

Revision ID: a7c0de140007
Revises: a7c0de140006
Create Date: 2026-12-05 22:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140007"
down_revision: str | None = "a7c0de140006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = "analytics_events"
PERSON_INDEX = "analytics_events_person_id_created_at_idx"
EVENT_INDEX = "analytics_events_event_created_at_idx"


def _replace(name: str, columns: list[str], include: list[str]) -> None:
    """Build the new index beside the old one, then swap: reads keep an index throughout."""
    op.create_index(f"{name}_new", EVENTS, columns, postgresql_include=include)
    op.drop_index(name, table_name=EVENTS)
    op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    _replace(PERSON_INDEX, ["person_id", "created_at", "id"], ["event"])
    _replace(EVENT_INDEX, ["event", "created_at"], ["person_id", "id"])


def downgrade() -> None:
    _replace(EVENT_INDEX, ["event", "created_at"], ["person_id"])
    _replace(PERSON_INDEX, ["person_id", "created_at"], ["event"])
