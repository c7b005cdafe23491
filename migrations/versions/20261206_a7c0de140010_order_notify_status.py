"""orders: a change of the order row notifies ``shop_order`` with the order's id and its
status (``ord_… confirmed``), so that a long-poll waiting for some statuses knows the
status without reading it on every wake-up (services/order_watch.py, issue #15). The
timeline, payment and parcel changes notify the id alone, as before.

Revision ID: a7c0de140010
Revises: a7c0de140009
Create Date: 2026-12-06 05:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140010"
down_revision: str | None = "a7c0de140009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "shop_order"


def upgrade() -> None:
    # Only the order row's own change carries a status: its updates commit in the order
    # of the row's lock, so the latest status a listener hears is the latest committed.
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION order_change_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_TABLE_NAME = 'orders' THEN
                PERFORM pg_notify('{CHANNEL}', NEW.id || ' ' || NEW.status);
            ELSE
                PERFORM pg_notify('{CHANNEL}', to_jsonb(NEW) ->> TG_ARGV[0]);
            END IF;
            RETURN NULL;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION order_change_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', to_jsonb(NEW) ->> TG_ARGV[0]);
            RETURN NULL;
        END $$
        """
    )
