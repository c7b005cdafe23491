"""Analytics written for an erased account before the rollup swept such events: swept once.

Since commit 17db078 the hourly rollup, before it numbers people, gives
an event received for an account after its erasure to no one (its visitor,
``anon:<anonymousId>``, else the event alone, ``ae:<id>``; no user id, no session id)
and deletes an erased account's ``analytics_people`` row with no event of it left
(``services/analytics/rollup_repository.py``, ``ERASED_STRAYS`` and ``ERASED_PEOPLE``).
It reads only the events received since its watermark (less the overlap): strays
received before that change kept the account's id as their person, and so the
account its people row (its number in every bitmap of their hours) and its funnel
links. This sweeps them with the same rule, over every event, once.

The rule is copied as it is at this revision, not imported: a migration keeps doing
what it did when it was written, whatever the rollup's SQL becomes. Their
``received_at`` moves to now, as the rollup's sweep moves it: the next rollup run
recomputes their hours (the bitmaps lose the account's number) and relinks their
people (the links name the visitor). Idempotent: a second run finds no event of an
erased account received after its erasure, and no people row of one with no event
left. On an empty database both statements touch nothing.

Revision ID: a7c0de140028
Revises: a7c0de140027
Create Date: 2026-12-07 16:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c0de140028"
down_revision: str | None = "a7c0de140027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ``ERASED_STRAYS`` with no watermark: every event received, whenever.
ERASED_STRAYS = """
UPDATE analytics_events e SET user_id = NULL, session_id = NULL,
  person_id = coalesce('anon:' || e.anonymous_id, 'ae:' || e.id), received_at = now()
FROM users u
WHERE e.person_id = u.id AND u.status = 'deleted' AND e.received_at >= u.deleted_at
"""
ERASED_PEOPLE = """
DELETE FROM analytics_people p USING users u
WHERE p.person_id = u.id AND u.status = 'deleted'
  AND NOT EXISTS (SELECT 1 FROM analytics_events e WHERE e.person_id = p.person_id)
"""


def upgrade() -> None:
    op.execute(ERASED_STRAYS)
    op.execute(ERASED_PEOPLE)


def downgrade() -> None:
    # Nothing: the events swept belong to an erased account, which no downgrade gives
    # back (what they named before is not kept), and the code before this revision
    # reads them as it reads the ones its own rollup sweeps.
    pass
