"""analytics: each person's first order (``analytics_people.first_order_at``, beside
``first_seen_at``, kept by the hourly rollup and filled here from the events), so that
retention by first order reads cohorts from it and the per-day order bitmaps; and the
events' time index covering (person_id, event, id), so that strict funnels and funnels
with step windows read each person's events in order without the table

Revision ID: a7c0de140006
Revises: f15c0de00030
Create Date: 2026-12-04 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140006"
down_revision: str | None = "f15c0de00030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PEOPLE = "analytics_people"
FIRST_ORDER_INDEX = "analytics_people_first_order_at_idx"
EVENTS = "analytics_events"
TIME_INDEX = "analytics_events_created_at_idx"
# The walk's columns: whose event, which step, and the id that orders events of the same
# instant. The rollup's hour statements read the same columns by time.
TIME_INCLUDE = ["person_id", "event", "id"]


def _replace_time_index(include: list[str]) -> None:
    """Build the new index beside the old one, then swap: reads keep an index throughout."""
    op.create_index(f"{TIME_INDEX}_new", EVENTS, ["created_at"], postgresql_include=include)
    op.drop_index(TIME_INDEX, table_name=EVENTS)
    op.execute(f"ALTER INDEX {TIME_INDEX}_new RENAME TO {TIME_INDEX}")


def upgrade() -> None:
    op.add_column(PEOPLE, sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True))
    # Only people the rollup has numbered, as for first visits: the others get theirs
    # when their hour is rolled up.
    op.execute(
        """
        UPDATE analytics_people p SET first_order_at = f.first_at
        FROM (SELECT person_id, min(created_at) AS first_at FROM analytics_events
              WHERE event = 'order_complete' GROUP BY person_id) f
        WHERE f.person_id = p.person_id
        """
    )
    # Retention reads a range of first orders with the people's numbers: index-only.
    op.create_index(FIRST_ORDER_INDEX, PEOPLE, ["first_order_at"], postgresql_include=["number"])
    _replace_time_index(TIME_INCLUDE)


def downgrade() -> None:
    _replace_time_index([])
    op.drop_index(FIRST_ORDER_INDEX, table_name=PEOPLE)
    op.drop_column(PEOPLE, "first_order_at")
