"""order_events.audience: who a timeline entry is for, ``customer`` (the customer's own
reads show it) or ``staff`` (only staff see it: compensations, units to count in by
hand, provider trouble, fulfilment holds, staff decisions). New entries say so where
they are written (``OrderRepository.add_event(audience=…)``).

Existing rows: the entries whose message (and data) a staff-only writer of today writes
are backfilled ``staff``; every other row keeps ``customer``, the default, so it stays
visible as before. One transaction (Alembic runs the upgrade in one): the column, the
backfill and the check commit together or not at all. The column's constant default
is a catalog change (no table rewrite); the backfill and the check read the table once
each under the lock the new column took, which readers wait behind for that long.

Revision ID: a7c0de140027
Revises: a7c0de140026
Create Date: 2026-12-07 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140027"
down_revision: str | None = "a7c0de140026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "order_events"
CHECK = "order_events_audience_known_check"
# The staff-only entries written before this revision, as their writers worded them.
STAFF_ENTRIES = (
    # release_stock (a compensation) and the units it, or a return's receipt, could
    # not put back on hand.
    "message = 'stock released'",
    "data ? 'notPutBack'",
    # The payment provider unreachable while authorising.
    "key = 'payment-provider-unreachable'",
    "message LIKE 'waiting for the payment provider%'",
    # The warehouse's own steps; the customer's are the order's status and parcels.
    "message IN ('fulfilment order opened', 'fulfilment on hold', 'fulfilment released', "
    "'fulfilment cancelled')",
    "(message LIKE 'parcel % cancelled; its label was refunded' AND NOT data ? 'carrierStatus')",
    "key LIKE 'label-kept:%'",
    "(message LIKE 'parcel % delayed: no carrier update for %' AND data ? 'stallHours')",
    # Staff settling a return, and a refund Stripe failed after it was made.
    "message LIKE 'return settled by staff:%'",
    "message LIKE 'refund % failed at Stripe (%'",
)


def upgrade() -> None:
    op.add_column(
        TABLE,
        sa.Column("audience", sa.String(length=8), server_default="customer", nullable=False),
    )
    op.execute(f"UPDATE {TABLE} SET audience = 'staff' WHERE " + " OR ".join(STAFF_ENTRIES))
    op.create_check_constraint(op.f(CHECK), TABLE, "audience IN ('customer', 'staff')")


def downgrade() -> None:
    op.drop_constraint(op.f(CHECK), TABLE, type_="check")
    op.drop_column(TABLE, "audience")
