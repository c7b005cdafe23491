"""notifications: a customer's notifications, one per (event, user), written by the
``notifications`` relay subscriber; an insert NOTIFYs ``shop_notification`` with the
user's id (a trigger, so in the writing transaction, delivered at its commit), which
``GET /api/events/stream`` waits on

Revision ID: a7c0de140013
Revises: a7c0de140012
Create Date: 2026-12-06 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a7c0de140013"
down_revision: str | None = "a7c0de140012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services/notifications/stream.py listens on this channel; the payload is the user's id.
CHANNEL = "shop_notification"


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("notifications_user_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("notifications_pkey")),
        sa.UniqueConstraint("event_id", "user_id", name="notifications_event_id_user_id_key"),
    )
    op.create_index("notifications_user_id_id_idx", "notifications", ["user_id", "id"])
    op.create_index(
        "notifications_user_id_unread_idx",
        "notifications",
        ["user_id", "id"],
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.execute(
        f"""
        CREATE FUNCTION notification_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.user_id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER notifications_notify AFTER INSERT ON notifications "
        "FOR EACH ROW EXECUTE FUNCTION notification_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER notifications_notify ON notifications")
    op.execute("DROP FUNCTION notification_notify()")
    op.drop_index("notifications_user_id_unread_idx", table_name="notifications")
    op.drop_index("notifications_user_id_id_idx", table_name="notifications")
    op.drop_table("notifications")
