"""Distinct people over a range, exactly, from the rollups' bitmaps: whole UTC days from
``analytics_event_daily``, the hours at either edge from ``analytics_event_hourly``.

One statement reads every piece a dashboard needs (the range's and the previous
period's, and the hourly people counts of a series), so a hit makes one round trip for
its people whatever the range."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import bitmaps

DAY = timedelta(days=1)
Unit = Literal["hour", "day"]
# Decoded bitmaps an API process keeps, by their bytes (so never stale: a recomputed
# hour or day has other bytes). Decompressing was most of a dashboard's own CPU, and
# successive hits of a range read mostly the same pieces. About 25 kB each at 100,000
# people.
DECODED_BITMAPS = 2048


def midnight(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def next_midnight(at: datetime) -> datetime:
    start = midnight(at)
    return start if start == at else start + DAY


@dataclass(frozen=True)
class Pieces:
    """``[start, end)`` as edge hours and whole days: hours in ``[start, days_from)`` and
    ``[days_to, end)``, days in ``[days_from, days_to)`` (empty when there is no whole day)."""

    start: datetime
    end: datetime
    days_from: datetime
    days_to: datetime

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Pieces:
        first, last = next_midnight(start), midnight(end)
        if first >= last:
            return cls(start, end, end, end)
        return cls(start, end, first, last)


@dataclass(frozen=True)
class PeopleAsk:
    """The rows of ``events`` over ``[start, end)`` (as pieces), with their bitmaps; or,
    with ``counts_only``, each hour's own row of ``events`` without its bitmap."""

    tag: str
    start: datetime
    end: datetime
    events: tuple[str, ...]
    counts_only: bool = False


@dataclass(frozen=True)
class PeopleRow:
    unit: Unit
    at: datetime
    event: str
    events: int
    people: int
    bitmap: bytes | None


PIECE_HOURS = """
SELECT {n} AS ask, 'hour' AS unit, hour AS at, event, events, people, bitmap
FROM analytics_event_hourly
WHERE event = ANY(:events_{n})
  AND ((hour >= :start_{n} AND hour < :days_from_{n}) OR (hour >= :days_to_{n} AND hour < :end_{n}))
"""
PIECE_DAYS = """
SELECT {n}, 'day', day, event, events, people, bitmap FROM analytics_event_daily
WHERE event = ANY(:events_{n}) AND day >= :days_from_{n} AND day < :days_to_{n}
"""
COUNT_HOURS = """
SELECT {n}, 'hour', hour, event, events, people, CAST(NULL AS bytea) FROM analytics_event_hourly
WHERE event = ANY(:events_{n}) AND hour >= :start_{n} AND hour < :end_{n}
"""


class PeopleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rows(self, asks: Sequence[PeopleAsk]) -> dict[str, list[PeopleRow]]:
        """Every ask's rows, in one statement (a ``UNION ALL`` of its pieces)."""
        parts: list[str] = []
        params: dict[str, Any] = {}
        for n, ask in enumerate(asks):
            pieces = Pieces.of(ask.start, ask.end)
            params |= {
                f"events_{n}": list(ask.events),
                f"start_{n}": pieces.start,
                f"end_{n}": pieces.end,
                f"days_from_{n}": pieces.days_from,
                f"days_to_{n}": pieces.days_to,
            }
            if ask.counts_only:
                parts.append(COUNT_HOURS.format(n=n))
            else:
                parts.append(PIECE_HOURS.format(n=n))
                parts.append(PIECE_DAYS.format(n=n))
        found: dict[str, list[PeopleRow]] = {ask.tag: [] for ask in asks}
        if not parts:
            return found
        sql = " UNION ALL ".join(f"({part})" for part in parts)
        result = await self.session.exec(text(sql), params=params)  # type: ignore[call-overload]
        for n, unit, at, event, events, people, blob in result.all():
            found[asks[n].tag].append(
                PeopleRow(unit, at, event, events, people, None if blob is None else bytes(blob))
            )
        return found


@lru_cache(maxsize=DECODED_BITMAPS)
def decoded(blob: bytes) -> int:
    return bitmaps.decode(blob)


def union(rows: Iterable[PeopleRow], event: str) -> int:
    """The people of ``event`` in ``rows``, as a bitmap ``int``."""
    members = 0
    for r in rows:
        if r.event == event and r.bitmap is not None:
            members |= decoded(r.bitmap)
    return members


def total(rows: Iterable[PeopleRow], event: str) -> int:
    """The events of ``event`` in ``rows`` (each piece's count, summed)."""
    return sum(r.events for r in rows if r.event == event)


def edge_unions(rows: Iterable[PeopleRow], event: str) -> dict[datetime, int]:
    """The people of ``event`` per UTC day of the edge hours in ``rows`` (the partial
    days at either end of a range)."""
    found: dict[datetime, int] = defaultdict(int)
    for r in rows:
        if r.unit == "hour" and r.event == event and r.bitmap is not None:
            found[midnight(r.at)] |= decoded(r.bitmap)
    return found
