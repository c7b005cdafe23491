"""event_deliveries, outbox.dispatched_at, and a NOTIFY on every outbox insert

Revision ID: e7a1c0de0003
Revises: e7a1c0de0002
Create Date: 2026-12-03 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "e7a1c0de0003"
down_revision: str | None = "e7a1c0de0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The relay LISTENs on this channel; the notification is sent when the writer commits.
CHANNEL = "shop_outbox"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "outbox_undispatched_idx",
        "outbox",
        ["seq"],
        unique=False,
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("subscriber", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("aggregate_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("aggregate_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbox.id"],
            name=op.f("event_deliveries_event_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "subscriber", name=op.f("event_deliveries_pkey")),
    )
    op.create_index(
        "event_deliveries_pending_aggregate_idx",
        "event_deliveries",
        ["subscriber", "aggregate_type", "aggregate_id", "seq"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "event_deliveries_status_created_at_idx",
        "event_deliveries",
        ["status", "created_at"],
        unique=False,
    )
    op.execute(
        f"""
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
    op.drop_index("event_deliveries_status_created_at_idx", table_name="event_deliveries")
    op.drop_index(
        "event_deliveries_pending_aggregate_idx",
        table_name="event_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("event_deliveries")
    op.drop_index(
        "outbox_undispatched_idx",
        table_name="outbox",
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.drop_column("outbox", "dispatched_at")
