"""Each event's link to its person's event just before it (``analytics_event_links``),
which a ``strict`` funnel reads instead of probing every step event's person.

The hourly rollup keeps the links (``RollupService.refresh``): whoever has events
received since the watermark (new ones, late ones, a guest's given to the user at
sign-in: ``reassign`` receives them again) is relinked whole, every one of their events
in (time, id) order, and so is whoever held a link of those events before (the guest).
A person is relinked whole rather than from their earliest new event because an event
can also move in time (``shop seed`` shifts them), which leaves no trace of where it was.

Until a run has relinked them, those people's links may be stale: the funnel treats
them as *pending* (``PENDING``: the same people, seen from its own snapshot) and probes
their events as it did before there were links."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

# People relinked per statement (and transaction): a bounded read of their events.
BATCH = 2000

# The people whose links may be stale after events were received since ``:linked_since``: the
# events' people now, and the people their links name (a guest whose events the user
# has now). The second part looks the links up by id, no join over the links.
PENDING = """
SELECT person_id FROM analytics_events WHERE received_at > :linked_since
UNION
SELECT person_id FROM analytics_event_links
WHERE id = ANY(ARRAY(SELECT id FROM analytics_events WHERE received_at > :linked_since))
"""
# The people with events in [:start, :end) (a rebuild of hours written with past
# receipt times, which ``PENDING`` does not see).
ACTIVE = """
SELECT DISTINCT person_id FROM analytics_events WHERE created_at >= :start AND created_at < :end
"""
# Every event of the people, each with the one before it, read index-only in (person,
# time, id) order through the person index; a row is written only when it changed.
RELINK = """
INSERT INTO analytics_event_links AS l
  (id, person_id, event, created_at, prev_event, prev_at, prev_id)
SELECT id, person_id, event, created_at,
  lag(event) OVER w, lag(created_at) OVER w, lag(id) OVER w
FROM analytics_events WHERE person_id = ANY(CAST(:people AS text[]))
WINDOW w AS (PARTITION BY person_id ORDER BY created_at, id)
ON CONFLICT (id) DO UPDATE SET person_id = excluded.person_id, event = excluded.event,
  created_at = excluded.created_at, prev_event = excluded.prev_event,
  prev_at = excluded.prev_at, prev_id = excluded.prev_id
WHERE (l.person_id, l.event, l.created_at, l.prev_event, l.prev_at, l.prev_id)
  IS DISTINCT FROM (excluded.person_id, excluded.event, excluded.created_at,
                    excluded.prev_event, excluded.prev_at, excluded.prev_id)
"""


class LinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _people(self, sql: str, **params: Any) -> list[str]:
        result = await self.session.exec(text(sql), params=params)  # type: ignore[call-overload]
        return sorted(str(r[0]) for r in result.all())

    async def pending(self, since: datetime) -> list[str]:
        """The people with events received after ``since`` or whose links name those
        events."""
        return await self._people(PENDING, linked_since=since)

    async def active(self, start: datetime, end: datetime) -> list[str]:
        """The people with events that happened in ``[start, end)``."""
        return await self._people(ACTIVE, start=start, end=end)

    async def relink(self, people: Sequence[str]) -> None:
        """Every event of ``people`` linked to the one before it."""
        if people:
            await self.session.exec(
                text(RELINK),  # type: ignore[call-overload]
                params={"people": list(people)},
            )


def batches(people: Sequence[str]) -> list[list[str]]:
    return [list(people[n : n + BATCH]) for n in range(0, len(people), BATCH)]
