"""NOTIFY ``shop_stock`` with a product's id, its new available stock and the change's
revision (``prod_… 7 1042``) whenever a stock row's ``on_hand - reserved`` changes, from
a trigger in the writing transaction (delivered at its commit, whoever writes it: a
reservation, a checkout, a restock, a staff adjustment). Each API process keeps its view
of the available stock from these (services/catalog/stock_view.py, issue #15): a
catalogue read no longer reads the stock per request.

``revision`` orders a row's changes: taken from a sequence under the row's lock (a
BEFORE trigger), so a later change of the row always has a larger one, across a delete
and re-insert too. A view that read a row (with its revision) keeps it against an older
change's notification still on its way.

Revision ID: f15c0de00040
Revises: a7c0de140011
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f15c0de00040"
down_revision: str | None = "a7c0de140011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "shop_stock"


def upgrade() -> None:
    op.execute("CREATE SEQUENCE stock_revision_seq")
    op.add_column(
        "stock_levels",
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        """
        CREATE FUNCTION stock_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.revision := nextval('stock_revision_seq');
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER stock_levels_revision_update BEFORE UPDATE ON stock_levels "
        "FOR EACH ROW WHEN (OLD.on_hand - OLD.reserved IS DISTINCT FROM "
        "NEW.on_hand - NEW.reserved) EXECUTE FUNCTION stock_revision()"
    )
    op.execute(
        "CREATE TRIGGER stock_levels_revision_insert BEFORE INSERT ON stock_levels "
        "FOR EACH ROW EXECUTE FUNCTION stock_revision()"
    )
    op.execute(
        f"""
        CREATE FUNCTION stock_change_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify(
                    '{CHANNEL}', OLD.product_id || ' 0 ' || nextval('stock_revision_seq')
                );
            ELSE
                PERFORM pg_notify(
                    '{CHANNEL}',
                    NEW.product_id || ' ' || (NEW.on_hand - NEW.reserved) || ' ' || NEW.revision
                );
            END IF;
            RETURN NULL;
        END $$
        """
    )
    # Only a change of what is available: a ledger-only update (the low-stock flag, the
    # timestamp) notifies nobody. A new row with nothing available reads as no row does.
    op.execute(
        "CREATE TRIGGER stock_levels_change_notify_update AFTER UPDATE ON stock_levels "
        "FOR EACH ROW WHEN (OLD.on_hand - OLD.reserved IS DISTINCT FROM "
        "NEW.on_hand - NEW.reserved) EXECUTE FUNCTION stock_change_notify()"
    )
    op.execute(
        "CREATE TRIGGER stock_levels_change_notify_insert AFTER INSERT ON stock_levels "
        "FOR EACH ROW WHEN (NEW.on_hand - NEW.reserved <> 0) "
        "EXECUTE FUNCTION stock_change_notify()"
    )
    op.execute(
        "CREATE TRIGGER stock_levels_change_notify_delete AFTER DELETE ON stock_levels "
        "FOR EACH ROW WHEN (OLD.on_hand - OLD.reserved <> 0) "
        "EXECUTE FUNCTION stock_change_notify()"
    )


def downgrade() -> None:
    for event in ("update", "insert", "delete"):
        op.execute(f"DROP TRIGGER stock_levels_change_notify_{event} ON stock_levels")
    op.execute("DROP FUNCTION stock_change_notify()")
    for event in ("update", "insert"):
        op.execute(f"DROP TRIGGER stock_levels_revision_{event} ON stock_levels")
    op.execute("DROP FUNCTION stock_revision()")
    op.drop_column("stock_levels", "revision")
    op.execute("DROP SEQUENCE stock_revision_seq")
