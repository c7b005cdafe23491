"""Retention: cohorts of people by the period of their first order (or first visit),
and how many of each came back in each later period."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
        resolved = ensure_horizon(resolved, horizon)
        # Whole cohorts: the range starts at the start of its first period, as reported
        # (``range.from``) and as counted.
        whole = replace(resolved, start=period_start(resolved.start, unit))
        return cls(unit, count, by, whole)

    @property
    def first_period(self) -> datetime:
        """The start of the first cohort's period: the range's start (``parse``)."""
        return self.range.start


def period_start(at: datetime, period: RetentionPeriod) -> datetime:
    """The start of the period ``at`` falls in: its UTC day, or the Monday of its week."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is RetentionPeriod.WEEK:
        day -= timedelta(days=day.weekday())
    return day


# Per cohort kind: the people's column their cohort comes from, and the rollups' event
# whose per-day people are those who came back.
COHORT_SOURCE = {
    CohortBy.FIRST_ORDER: ("first_order_at", "order_complete"),
    CohortBy.FIRST_VISIT: ("first_seen_at", ANY_EVENT),
}
# A row per cohort (an array of its people's numbers), not one per person.
_COHORTS = """
SELECT date_trunc(:unit, {column}, 'UTC') AS cohort_start, array_agg(number)
FROM analytics_people WHERE {column} >= :start AND {column} < :end GROUP BY 1"""


class RetentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def counts(self, query: RetentionQuery) -> dict[datetime, dict[int, int]]:
        """People per cohort start and period (0: the cohort itself), from the rollups
        rather than the events: cohorts from the people's first order or first visit
        (``analytics_people.first_order_at``, ``first_seen_at``), who came back from the
        per-day bitmaps of ``order_complete`` or of any event (every period is whole UTC
        days)."""
        column, event = COHORT_SOURCE[query.cohort_by]
        length = PERIOD_LENGTH[query.period]
        result = await self.session.exec(
            text(_COHORTS.format(column=column)),  # type: ignore[call-overload]
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
        ask = PeopleAsk("back", after, until, (event,))
        days = (await PeopleRepository(self.session).rows([ask]))["back"]
        active = {row.at: row for row in days if row.unit == "day"}
        found: dict[datetime, dict[int, int]] = {}
        for start, members in cohorts.items():
            found[start] = by_period = {0: members.bit_count()}
            for k in range(1, query.periods + 1):
                period_start = start + length * k
                rows = (active.get(period_start + DAY * d) for d in range(length // DAY))
                back = union((row for row in rows if row is not None), event) & members
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
