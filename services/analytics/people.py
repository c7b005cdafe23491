"""Distinct people over a range, exactly, from the rollups' bitmaps: whole UTC days from
``analytics_event_daily``, the hours at either edge from ``analytics_event_hourly``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics import bitmaps

DAY = timedelta(days=1)
TABLES = {"hour": "analytics_event_hourly", "day": "analytics_event_daily"}


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


class PeopleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        result = await self.session.exec(text(sql), params=params)  # type: ignore[call-overload]
        return [tuple(r) for r in result.all()]

    async def bitmaps(
        self, unit: str, start: datetime, end: datetime, events: Sequence[str]
    ) -> list[tuple[datetime, str, bytes]]:
        """(hour or day, event, bitmap) of the rows starting in ``[start, end)``."""
        column = "hour" if unit == "hour" else "day"
        rows = await self._rows(
            f"SELECT {column}, event, bitmap FROM {TABLES[unit]} "
            f"WHERE {column} >= :start AND {column} < :end AND event = ANY(:events)",
            start=start,
            end=end,
            events=list(events),
        )
        return [(at, event, bytes(blob)) for at, event, blob in rows]

    async def counts(
        self, unit: str, start: datetime, end: datetime, event: str
    ) -> dict[datetime, int]:
        """People per hour (or day) of one event, without reading the bitmaps."""
        column = "hour" if unit == "hour" else "day"
        rows = await self._rows(
            f"SELECT {column}, people FROM {TABLES[unit]} "
            f"WHERE {column} >= :start AND {column} < :end AND event = :event",
            start=start,
            end=end,
            event=event,
        )
        return {at: people for at, people in rows}


class PeopleReader:
    def __init__(self, session: AsyncSession) -> None:
        self.people = PeopleRepository(session)

    async def unions(self, start: datetime, end: datetime, events: Sequence[str]) -> dict[str, int]:
        """Each event's people in ``[start, end)``, as a bitmap ``int``."""
        pieces = Pieces.of(start, end)
        rows = await self.people.bitmaps("hour", pieces.start, pieces.days_from, events)
        rows += await self.people.bitmaps("day", pieces.days_from, pieces.days_to, events)
        rows += await self.people.bitmaps("hour", pieces.days_to, pieces.end, events)
        found: dict[str, int] = defaultdict(int)
        for _, event, blob in rows:
            found[event] |= bitmaps.decode(blob)
        return {event: found[event] for event in events}

    async def hourly_counts(
        self, start: datetime, end: datetime, event: str
    ) -> dict[datetime, int]:
        return await self.people.counts("hour", start, end, event)

    async def daily_counts(self, start: datetime, end: datetime, event: str) -> dict[datetime, int]:
        return await self.people.counts("day", start, end, event)
