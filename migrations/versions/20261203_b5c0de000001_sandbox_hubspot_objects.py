"""sandbox_hubspot_objects: contacts, deals and property definitions of the HubSpot sandbox

Revision ID: b5c0de000001
Revises: e7a1c0de0501
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b5c0de000001"
down_revision: str | None = "e7a1c0de0501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_hubspot_objects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("object_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "associations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
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
        sa.PrimaryKeyConstraint("id", name=op.f("sandbox_hubspot_objects_pkey")),
    )
    op.create_index(
        op.f("sandbox_hubspot_objects_object_type_idx"),
        "sandbox_hubspot_objects",
        ["object_type"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("sandbox_hubspot_objects_object_type_idx"), table_name="sandbox_hubspot_objects"
    )
    op.drop_table("sandbox_hubspot_objects")
