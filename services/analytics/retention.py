"""Retention: cohorts of people by the period of their first order (or first visit),
and how many of each came back in each later period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ValidationFailed
from models.analytics_funnel import RetentionCohort, RetentionReport
from models.analytics_rollups import ANY_EVENT
from services.analytics import bitmaps
from services.analytics.funnel import ensure_horizon, range_public
from services.analytics.people import DAY, PeopleAsk, PeopleRepository, union
from services.analytics.ranges import TimeRange, resolve_range

MAX_PERIODS = 26
DEFAULT_PERIODS = 8


class RetentionPeriod(StrEnum):
    WEEK = "week"  # ISO weeks, from Monday 00:00 UTC
    DAY = "day"


class CohortBy(StrEnum):
    FIRST_ORDER = "first_order"  # cohort: first order_complete; back: another order
    FIRST_VISIT = "first_visit"  # cohort: first event of any kind; back: any event


PERIOD_LENGTH = {RetentionPeriod.WEEK: timedelta(weeks=1), RetentionPeriod.DAY: timedelta(days=1)}
E = TypeVar("E", bound=StrEnum)
DEFAULT_RANGE = {RetentionPeriod.WEEK: "90d", RetentionPeriod.DAY: "30d"}


def _choice(kind: type[E], raw: str, code: str, field: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        accepted = ", ".join(member.value for member in kind)
        raise ValidationFailed(
            f"{field}: {raw!r}; accepted: {accepted}", code=code, field=field
        ) from None


@dataclass(frozen=True)
class RetentionQuery:
    period: RetentionPeriod
    periods: int
    cohort_by: CohortBy
    range: TimeRange

    @classmethod
    def parse(
        cls,
        *,
        period: str | None,
        periods: int | None,
        cohort: str | None,
        time_range: str | None,
        start: datetime | None,
        end: datetime | None,
        now: datetime,
    ) -> RetentionQuery:
        unit = _choice(RetentionPeriod, period or "week", "invalid_period", "period")
        if periods is not None and not 1 <= periods <= MAX_PERIODS:
            raise ValidationFailed(
                f"periods: give 1 to {MAX_PERIODS}", code="invalid_periods", field="periods"
            )
        by = _choice(CohortBy, cohort or CohortBy.FIRST_ORDER, "invalid_cohort", "cohort")
        if time_range is None and start is None and end is None:
            time_range = DEFAULT_RANGE[unit]
        count = periods or DEFAULT_PERIODS
        resolved = resolve_range(time_range, start, end, now)
        horizon = PERIOD_LENGTH[unit] * (count + 1)
        return cls(unit, count, by, ensure_horizon(resolved, horizon))

    @property
    def first_period(self) -> datetime:
        """The range's start, down to the start of its period (whole cohorts)."""
        day = self.range.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period is RetentionPeriod.WEEK:
            day -= timedelta(days=day.weekday())
        return day


_WORK_MEM = "SET LOCAL work_mem = '64MB'"
_BY_FIRST_ORDER = """WITH firsts AS (
  SELECT person_id, min(created_at) AS first_at
  FROM analytics_events a
  WHERE created_at >= :start AND created_at < :end AND a.event = 'order_complete'
  GROUP BY person_id
), cohort AS (
  SELECT f.person_id, date_trunc(:unit, f.first_at, 'UTC') AS cohort_start
  FROM firsts f
  WHERE NOT EXISTS (
    SELECT 1 FROM analytics_events b
    WHERE b.person_id = f.person_id AND b.created_at < :start AND b.event = 'order_complete')
), back AS (
  SELECT DISTINCT c.cohort_start, c.person_id, CAST(floor(
    extract(epoch FROM e.created_at - c.cohort_start) / :seconds) AS integer) AS k
  FROM cohort c JOIN analytics_events e ON e.person_id = c.person_id
  WHERE e.created_at >= :start AND e.created_at < :horizon AND e.event = 'order_complete'
    AND e.created_at >= c.cohort_start + CAST(:period AS interval)
    AND e.created_at < c.cohort_start + CAST(:span AS interval)
)
SELECT cohort_start, 0 AS k, count(*) AS people FROM cohort GROUP BY cohort_start
UNION ALL
SELECT cohort_start, k, count(*) AS people FROM back GROUP BY cohort_start, k"""


# A row per cohort (an array of its people's numbers), not one per person.
_FIRST_VISITS = """
SELECT date_trunc(:unit, first_seen_at, 'UTC') AS cohort_start, array_agg(number)
FROM analytics_people WHERE first_seen_at >= :start AND first_seen_at < :end GROUP BY 1"""


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def counts(self, query: RetentionQuery) -> dict[datetime, dict[int, int]]:
        """People per cohort start and period (0: the cohort itself)."""
        if query.cohort_by is CohortBy.FIRST_VISIT:
            return await self._first_visit_counts(query)
        length = PERIOD_LENGTH[query.period]
        span = length * (query.periods + 1)
        # The per-person hash tables (50,000 people at 10 million events) fit in memory;
        # with the default 4 MB they spill to disk.
        await self.session.exec(text(_WORK_MEM))  # type: ignore[call-overload]
        rows = await self.session.exec(
            text(_BY_FIRST_ORDER),  # type: ignore[call-overload]
            params={
                "start": query.first_period,
                "end": query.range.end,
                "horizon": query.range.end + span,
                "unit": query.period.value,
                "seconds": int(length.total_seconds()),
                "period": length,
                "span": span,
            },
        )
        found: dict[datetime, dict[int, int]] = {}
        for row in rows.all():
            found.setdefault(row.cohort_start, {})[int(row.k)] = int(row.people)
        return found

    async def _first_visit_counts(self, query: RetentionQuery) -> dict[datetime, dict[int, int]]:
        """By first visit, from the rollups rather than the events: cohorts from the
        people's first visits (``analytics_people.first_seen_at``), who came back from
        the per-day bitmaps of anyone active (every period is whole UTC days)."""
        length = PERIOD_LENGTH[query.period]
        result = await self.session.exec(
            text(_FIRST_VISITS),  # type: ignore[call-overload]
            params={
                "unit": query.period.value,
                "start": query.first_period,
                "end": query.range.end,
            },
        )
        cohorts = {start: bitmaps.of_numbers(people) for start, people in result.all()}
        if not cohorts:
            return {}
        after = min(cohorts) + length
        until = max(cohorts) + length * (query.periods + 1)
        ask = PeopleAsk("active", after, until, (ANY_EVENT,))
        days = (await PeopleRepository(self.session).rows([ask]))["active"]
        active = {row.at: row for row in days if row.unit == "day"}
        found: dict[datetime, dict[int, int]] = {}
        for start, members in cohorts.items():
            found[start] = by_period = {0: members.bit_count()}
            for k in range(1, query.periods + 1):
                period_start = start + length * k
                rows = (active.get(period_start + DAY * d) for d in range(length // DAY))
                back = union((row for row in rows if row is not None), ANY_EVENT) & members
                by_period[k] = back.bit_count()
        return found


class RetentionService:
    def __init__(self, session: AsyncSession) -> None:
        self.repo = RetentionRepository(session)

    async def retention(self, query: RetentionQuery, now: datetime) -> RetentionReport:
        length = PERIOD_LENGTH[query.period]
        cohorts: list[RetentionCohort] = []
        for start, by_period in sorted((await self.repo.counts(query)).items()):
            size = by_period[0]
            # Periods that have begun by now; later ones are left out, not zero.
            reached = min(query.periods + 1, (now - start) // length + 1)
            retained = [by_period.get(k, 0) for k in range(reached)]
            cohorts.append(
                RetentionCohort(
                    start=start.astimezone(UTC).date(),
                    size=size,
                    retained=retained,
                    rates=[round(count / size, 4) for count in retained],
                )
            )
        return RetentionReport(
            period=query.period.value,
            cohort_by=query.cohort_by.value,
            periods=query.periods,
            range=range_public(query.range),
            cohorts=cohorts,
            timestamp=now,
        )
