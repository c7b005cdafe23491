"""analytics: who an event belongs to (person, anonymous id), page and referrer, when it
arrived (received_at, for rollups that correct late hours), time indexes, identities

Revision ID: a7c0de140001
Revises: e5a5e0000001
Create Date: 2026-12-04 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140001"
down_revision: str | None = "e5a5e0000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("analytics_events", sa.Column("anonymous_id", sa.String(100), nullable=True))
    op.add_column("analytics_events", sa.Column("person_id", sa.String(110), nullable=True))
    op.add_column("analytics_events", sa.Column("page", sa.String(2048), nullable=True))
    op.add_column("analytics_events", sa.Column("referrer", sa.String(2048), nullable=True))
    op.add_column(
        "analytics_events",
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True
        ),
    )
    op.execute(
        """
        UPDATE analytics_events SET
            person_id = COALESCE(user_id, 'anon:' || session_id, 'ae:' || id),
            received_at = created_at
        """
    )
    op.alter_column("analytics_events", "person_id", nullable=False)
    op.alter_column("analytics_events", "received_at", nullable=False)
    op.create_index("analytics_events_created_at_idx", "analytics_events", ["created_at"])
    op.create_index("analytics_events_received_at_idx", "analytics_events", ["received_at"])
    op.create_index(
        "analytics_events_person_id_created_at_idx",
        "analytics_events",
        ["person_id", "created_at"],
    )
    op.create_index(
        "analytics_events_anonymous_id_idx",
        "analytics_events",
        ["anonymous_id"],
        postgresql_where=sa.text("anonymous_id IS NOT NULL"),
    )
    op.create_table(
        "analytics_identities",
        sa.Column("anonymous_id", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column(
            "linked_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("anonymous_id", name=op.f("analytics_identities_pkey")),
    )
    op.create_index(op.f("analytics_identities_user_id_idx"), "analytics_identities", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("analytics_identities_user_id_idx"), table_name="analytics_identities")
    op.drop_table("analytics_identities")
    op.drop_index(
        "analytics_events_anonymous_id_idx",
        table_name="analytics_events",
        postgresql_where=sa.text("anonymous_id IS NOT NULL"),
    )
    op.drop_index("analytics_events_person_id_created_at_idx", table_name="analytics_events")
    op.drop_index("analytics_events_received_at_idx", table_name="analytics_events")
    op.drop_index("analytics_events_created_at_idx", table_name="analytics_events")
    for column in ("received_at", "referrer", "page", "person_id", "anonymous_id"):
        op.drop_column("analytics_events", column)
