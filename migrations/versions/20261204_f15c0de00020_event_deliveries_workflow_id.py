"""event_deliveries.workflow_id: the workflow delivering a delivery's current generation

The relay starts one workflow per event per pass for all the subscribers it may start
(``EventFanoutWorkflow``), so a delivery's workflow id is no longer a function of the
delivery: the pass records it, and the slow poll asks Temporal about that id. NULL for
deliveries started before (their one-subscriber workflow's id is derived as it was).

Revision ID: f15c0de00020
Revises: f15c0de00010
Create Date: 2026-12-04 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "f15c0de00020"
down_revision: str | None = "f15c0de00010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "event_deliveries",
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("event_deliveries", "workflow_id")
