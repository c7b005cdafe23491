"""sandbox_easypost_objects: shipments and trackers of the EasyPost sandbox

Revision ID: e5a5e0000001
Revises: 78bdd19ee768
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e5a5e0000001"
down_revision: str | None = "78bdd19ee768"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_easypost_objects",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("advanced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("sandbox_easypost_objects_pkey")),
        sa.UniqueConstraint("seq", name=op.f("sandbox_easypost_objects_seq_key")),
    )
    op.create_index(
        op.f("sandbox_easypost_objects_kind_idx"),
        "sandbox_easypost_objects",
        ["kind"],
        unique=False,
    )
    op.create_index(
        op.f("sandbox_easypost_objects_advanced_at_idx"),
        "sandbox_easypost_objects",
        ["advanced_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("sandbox_easypost_objects_advanced_at_idx"), table_name="sandbox_easypost_objects"
    )
    op.drop_index(op.f("sandbox_easypost_objects_kind_idx"), table_name="sandbox_easypost_objects")
    op.drop_table("sandbox_easypost_objects")
