"""analytics: each event's funnel breakdown inputs kept on its row, ``source`` (the rule's
value: ``utm_source``, else the referrer's host, else ``direct``), ``category_id`` and
``product_id`` (from the properties), set by the database itself on every insert (a
trigger, so every writer, COPY included, stores the same value by the same expression)
and backfilled in batches; ``source`` is INCLUDEd in the covering ``(event, created_at)``
index, the two ids in an index of their own: a funnel broken down by source or category
takes its entry event's value index-only instead of reading each entered person's row

Revision ID: a7c0de140012
Revises: f15c0de00040
Create Date: 2026-12-06 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c0de140012"
down_revision: str | None = "f15c0de00040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "analytics_events"
COVERING = "analytics_events_event_created_at_idx"
CATEGORY = "analytics_events_event_category_idx"

# The one definition of an event's source (README, Analytics): the lower-cased
# ``utm_source``, else the lower-cased host of an absolute referrer URL, else ``direct``.
# In the database, so that its ``lower`` and regular expression decide, as they did when
# the funnel computed it at read time.
SOURCE_FUNCTION = r"""
CREATE FUNCTION analytics_event_source(properties jsonb, referrer text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(
  nullif(lower(properties->>'utm_source'), ''),
  nullif(lower(substring(referrer from '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)')), ''),
  'direct')
"""
TRIGGER_FUNCTION = """
CREATE FUNCTION analytics_events_breakdown() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.source := analytics_event_source(NEW.properties, NEW.referrer);
  NEW.category_id := NEW.properties->>'categoryId';
  NEW.product_id := NEW.properties->>'productId';
  RETURN NEW;
END
$$
"""
TRIGGER = f"""
CREATE TRIGGER analytics_events_breakdown BEFORE INSERT OR UPDATE OF properties, referrer
ON {TABLE} FOR EACH ROW EXECUTE FUNCTION analytics_events_breakdown()
"""
# The rows written before the trigger, a batch of ids at a time, each batch its own
# transaction: a 10-million-row table is not one transaction holding every row's lock
# (and the events go on being written meanwhile, by the trigger).
BATCH_ROWS = 50_000
BACKFILL = f"""
WITH batch AS (
  SELECT id FROM {TABLE} WHERE id > :after ORDER BY id LIMIT {BATCH_ROWS}
), filled AS (
  UPDATE {TABLE} e SET
    source = analytics_event_source(e.properties, e.referrer),
    category_id = e.properties->>'categoryId',
    product_id = e.properties->>'productId'
  FROM batch WHERE e.id = batch.id
  RETURNING e.id
)
SELECT max(id) FROM filled
"""

OTHER_INDEXES = f"""
SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = '{TABLE}'::regclass AND c.relname <> :covering ORDER BY c.relname
"""


def _replace(name: str, columns: list[str], include: list[str]) -> None:
    """Build the new index beside the old one, then swap: reads keep an index throughout."""
    op.create_index(f"{name}_new", TABLE, columns, postgresql_include=include)
    op.drop_index(name, table_name=TABLE)
    op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    for column in ("source", "category_id", "product_id"):
        op.add_column(TABLE, sa.Column(column, sa.String(), nullable=True))
    op.execute(SOURCE_FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRIGGER)
    bind = op.get_bind()
    with op.get_context().autocommit_block():
        after: str | None = ""
        while after is not None:
            after = bind.execute(sa.text(BACKFILL), {"after": after}).scalar()
        # Every row was rewritten: its page is no longer all-visible (index-only scans
        # would read the table again) and the old versions are dead.
        op.execute(f"VACUUM (ANALYZE) {TABLE}")
        # A filled page has no room for the new version of its rows (no HOT update), so
        # every index holds twice its entries, half of them now vacuumed away: rebuilt
        # (the covering one is replaced below), writes going on meanwhile.
        others = bind.execute(sa.text(OTHER_INDEXES), {"covering": COVERING}).scalars()
        for name in list(others):
            op.execute(f'REINDEX INDEX CONCURRENTLY "{name}"')
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    _replace(COVERING, ["event", "created_at"], ["person_id", "id", "source"])
    op.create_index(
        CATEGORY,
        TABLE,
        ["event", "created_at"],
        postgresql_include=["person_id", "id", "category_id", "product_id"],
    )


def downgrade() -> None:
    op.drop_index(CATEGORY, table_name=TABLE)
    _replace(COVERING, ["event", "created_at"], ["person_id", "id"])
    op.execute(f"DROP TRIGGER analytics_events_breakdown ON {TABLE}")
    op.execute("DROP FUNCTION analytics_events_breakdown()")
    op.execute("DROP FUNCTION analytics_event_source(jsonb, text)")
    for column in ("product_id", "category_id", "source"):
        op.drop_column(TABLE, column)
