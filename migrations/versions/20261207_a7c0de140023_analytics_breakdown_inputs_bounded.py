"""analytics: an event's breakdown inputs (``source``, ``category_id``, ``product_id``,
set by the trigger of a7c0de140012) are kept cut to 200 characters. They sit in btree
indexes, whose rows hold at most 2704 bytes: a client's ``utm_source`` (or ``categoryId``
and ``productId``) of a few KB that does not compress, or a referrer whose host is 2,000
non-ASCII characters, made the INSERT fail ("index row size exceeds btree maximum"), and
with it the API's whole batch of events, retried for ever. No stored row is longer (its
INSERT would have failed), so none is rewritten.

Revision ID: a7c0de140023
Revises: a7c0de140022
Create Date: 2026-12-07 01:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140023"
down_revision: str | None = "a7c0de140022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 200 characters are at most 800 bytes in UTF-8: the (event, created_at) index's row with
# ``source``, and the category index's with both ids, stay well under 2704 bytes.
LIMIT = 200

SOURCE_FUNCTION = """
CREATE OR REPLACE FUNCTION analytics_event_source(properties jsonb, referrer text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN left(coalesce(
  nullif(lower(properties->>'utm_source'), ''),
  nullif(lower(substring(referrer from '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)')), ''),
  'direct'), {limit})
"""
TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION analytics_events_breakdown() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.source := analytics_event_source(NEW.properties, NEW.referrer);
  NEW.category_id := {category};
  NEW.product_id := {product};
  RETURN NEW;
END
$$
"""
# As a7c0de140012 made them.
OLD_SOURCE = """
CREATE OR REPLACE FUNCTION analytics_event_source(properties jsonb, referrer text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(
  nullif(lower(properties->>'utm_source'), ''),
  nullif(lower(substring(referrer from '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)')), ''),
  'direct')
"""


def upgrade() -> None:
    op.execute(SOURCE_FUNCTION.format(limit=LIMIT))
    op.execute(
        TRIGGER_FUNCTION.format(
            category=f"left(NEW.properties->>'categoryId', {LIMIT})",
            product=f"left(NEW.properties->>'productId', {LIMIT})",
        )
    )


def downgrade() -> None:
    op.execute(OLD_SOURCE)
    op.execute(
        TRIGGER_FUNCTION.format(
            category="NEW.properties->>'categoryId'", product="NEW.properties->>'productId'"
        )
    )
