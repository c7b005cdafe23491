"""analytics: ``analytics_rollup_state.position``, the last person an unfinished rollup
run has relinked (row ``hourly.run_relinked``): a first run over a long history relinks
every person, about a minute per million events, and a retry resumes after that person
rather than at the first. Empty until a run writes it.

Revision ID: a7c0de140024
Revises: a7c0de140023
Create Date: 2026-12-07 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140024"
down_revision: str | None = "a7c0de140023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("analytics_rollup_state", sa.Column("position", sa.String(110), nullable=True))


def downgrade() -> None:
    op.drop_column("analytics_rollup_state", "position")
