"""lifetime value (users columns and its ledger), marketing contacts, SendGrid sandbox marketing

Revision ID: 3a1b7c0d9e12
Revises: b5c0de000001
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3a1b7c0d9e12"
down_revision: str | None = "b5c0de000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("lifetime_value", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "users",
        sa.Column(
            "lifetime_value_currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True
        ),
    )
    op.add_column(
        "users",
        sa.Column("orders_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("users", sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "lifetime_value_entries",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("orders_delta", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('order', 'refund', 'cancellation')",
            name=op.f("lifetime_value_entries_kind_known_check"),
        ),
        sa.CheckConstraint(
            "orders_delta BETWEEN -1 AND 1",
            name=op.f("lifetime_value_entries_orders_delta_unit_check"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("lifetime_value_entries_order_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("lifetime_value_entries_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("lifetime_value_entries_pkey")),
    )
    op.create_index(
        op.f("lifetime_value_entries_order_id_idx"), "lifetime_value_entries", ["order_id"]
    )
    op.create_index(
        op.f("lifetime_value_entries_user_id_idx"), "lifetime_value_entries", ["user_id"]
    )
    op.create_index(
        "lifetime_value_entries_one_order_idx",
        "lifetime_value_entries",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'order'"),
    )
    op.create_index(
        "lifetime_value_entries_one_cancellation_idx",
        "lifetime_value_entries",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'cancellation'"),
    )

    op.create_table(
        "marketing_contacts",
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("marketing_contacts_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "email", name=op.f("marketing_contacts_pkey")),
    )

    op.create_table(
        "sandbox_marketing_records",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("sandbox_marketing_records_pkey")),
        sa.UniqueConstraint("kind", "key", name="sandbox_marketing_records_kind_key"),
    )


def downgrade() -> None:
    op.drop_table("sandbox_marketing_records")
    op.drop_table("marketing_contacts")
    op.drop_index(
        "lifetime_value_entries_one_cancellation_idx",
        table_name="lifetime_value_entries",
        postgresql_where=sa.text("kind = 'cancellation'"),
    )
    op.drop_index(
        "lifetime_value_entries_one_order_idx",
        table_name="lifetime_value_entries",
        postgresql_where=sa.text("kind = 'order'"),
    )
    op.drop_index(op.f("lifetime_value_entries_user_id_idx"), table_name="lifetime_value_entries")
    op.drop_index(op.f("lifetime_value_entries_order_id_idx"), table_name="lifetime_value_entries")
    op.drop_table("lifetime_value_entries")
    op.drop_column("users", "last_order_at")
    op.drop_column("users", "first_order_at")
    op.drop_column("users", "orders_count")
    op.drop_column("users", "lifetime_value_currency")
    op.drop_column("users", "lifetime_value")
