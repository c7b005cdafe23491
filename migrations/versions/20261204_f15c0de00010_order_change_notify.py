"""NOTIFY ``shop_order`` with the order's id whenever what ``GET /api/orders/{id}`` shows
changes: the order row, a timeline entry, its payment, a parcel. Sent by triggers, so in
the transaction that makes the change (delivered at its commit) whichever code writes it;
the API's long-polls and event streams wait on it.

Revision ID: f15c0de00010
Revises: a7c0de140005
Create Date: 2026-12-04 22:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f15c0de00010"
down_revision: str | None = "a7c0de140005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services/order_watch.py listens on this channel; the payload is the order's id.
CHANNEL = "shop_order"
# (table, the column holding the order's id, the events that change what the API shows)
WATCHED = (
    ("orders", "id", "UPDATE"),
    ("order_events", "order_id", "INSERT"),
    ("payments", "order_id", "INSERT OR UPDATE"),
    ("shipments", "order_id", "INSERT OR UPDATE"),
)


def upgrade() -> None:
    # PostgreSQL folds identical notifications of one transaction into one, so a step that
    # moves the order and appends its timeline entry wakes each waiter once.
    op.execute(
        f"""
        CREATE FUNCTION order_change_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', to_jsonb(NEW) ->> TG_ARGV[0]);
            RETURN NULL;
        END $$
        """
    )
    for table, column, events in WATCHED:
        # An UPDATE that changes nothing (a retried step's no-op) notifies nobody.
        when = " WHEN (OLD.* IS DISTINCT FROM NEW.*)" if events == "UPDATE" else ""
        op.execute(
            f"CREATE TRIGGER {table}_change_notify AFTER {events} ON {table} "
            f"FOR EACH ROW{when} EXECUTE FUNCTION order_change_notify('{column}')"
        )


def downgrade() -> None:
    for table, _, _ in WATCHED:
        op.execute(f"DROP TRIGGER {table}_change_notify ON {table}")
    op.execute("DROP FUNCTION order_change_notify()")
