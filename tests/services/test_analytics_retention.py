"""Retention on a hand-built data set (March 2001, a fixed ``now``) against a hand count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from random import Random

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from models.analytics import AnalyticsEvent
from models.analytics_funnel import RetentionReport
from services.analytics.retention import RetentionQuery, RetentionService
from services.analytics.rollups import RollupService

T0 = datetime(2001, 3, 5, 9, tzinfo=UTC)  # a Monday, 09:00
D = timedelta(days=1)
NOW = T0 + 24 * D  # week 0 has reached period 3, week 1 period 2


def event(person: str, name: str, at: datetime) -> AnalyticsEvent:
    return AnalyticsEvent(event=name, person_id=person, created_at=at)


@pytest.fixture
async def history(db_sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """The events, and the rollups that retention by first visit reads, filled by the
    rollup service inside the test's transaction (rolled back after it)."""
    events = [
        # p1 orders in week 0, again twice in week 1, and in week 3.
        *(event("p1", "order_complete", T0 + d * D) for d in (1, 8, 9, 22)),
        # p2 orders twice in week 0 (days 2 and 4).
        event("p2", "order_complete", T0 + 2 * D),
        event("p2", "order_complete", T0 + 4 * D),
        # p3's first order was before the range: in no cohort.
        event("p3", "order_complete", T0 - 3 * D),
        event("p3", "order_complete", T0 + 3 * D),
        # p4 visits in week 0, first orders in week 1, orders again in week 2.
        event("p4", "product_view", T0 + D),
        event("p4", "order_complete", T0 + 10 * D),
        event("p4", "order_complete", T0 + 15 * D),
        # p5 orders in week 1 and only looks afterwards.
        event("p5", "order_complete", T0 + 12 * D),
        event("p5", "product_view", T0 + 20 * D),
    ]
    async with db_sessions() as session:
        session.add_all(events)
        await session.commit()
    await RollupService(db_sessions).recompute(sorted({hour_of(e.created_at) for e in events}))
    async with db_sessions() as session:
        yield session


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def retention(session: AsyncSession, **query: str) -> RetentionReport:
    parsed = RetentionQuery.parse(
        period=query.get("period"),
        periods=3,
        cohort=query.get("cohort"),
        time_range=None,
        start=T0,
        end=T0 + 14 * D,
        now=NOW,
    )
    return await RetentionService(session).retention(parsed, NOW)


def table(report: RetentionReport) -> list[tuple[date, int, list[int]]]:
    return [(c.start, c.size, c.retained) for c in report.cohorts]


async def test_weekly_cohorts_by_first_order(history: AsyncSession) -> None:
    report = await retention(history)
    assert (report.period, report.cohort_by, report.periods) == ("week", "first_order", 3)
    # Week 0: p1, p2; p1 back in week 1 and week 3. Week 1: p4, p5; p4 back in week 2.
    # Week 1's period 3 starts after now: absent, not zero.
    assert table(report) == [
        (date(2001, 3, 5), 2, [2, 1, 0, 1]),
        (date(2001, 3, 12), 2, [2, 1, 0]),
    ]
    assert report.cohorts[0].rates == [1.0, 0.5, 0.0, 0.5]


@pytest.mark.parametrize(
    ("period", "start", "first"),
    [
        # From a Wednesday 09:00: the Monday of that week, as its first cohort starts.
        ("week", T0 + 2 * D, datetime(2001, 3, 5, tzinfo=UTC)),
        ("day", T0, datetime(2001, 3, 5, tzinfo=UTC)),
    ],
)
async def test_the_range_reported_starts_with_its_first_cohort(
    history: AsyncSession, period: str, start: datetime, first: datetime
) -> None:
    parsed = RetentionQuery.parse(
        period=period,
        periods=3,
        cohort=None,
        time_range=None,
        start=start,
        end=T0 + 14 * D,
        now=NOW,
    )
    report = await RetentionService(history).retention(parsed, NOW)
    assert report.range.from_ == first
    assert report.range.to == T0 + 14 * D
    # No cohort before it (a daily one is listed only with people in it).
    assert min(c.start for c in report.cohorts) >= first.date()


async def test_weekly_cohorts_by_first_visit(history: AsyncSession) -> None:
    report = await retention(history, cohort="first_visit")
    # Week 0: p1, p2, p4 (p4's view); week 1: p5. Any event brings someone back.
    assert table(report) == [
        (date(2001, 3, 5), 3, [3, 2, 1, 1]),
        (date(2001, 3, 12), 1, [1, 1, 0]),
    ]
    assert report.cohorts[0].rates == [1.0, 0.6667, 0.3333, 0.3333]


async def test_daily_cohorts(history: AsyncSession) -> None:
    report = await retention(history, period="day")
    # p1 (day 1) is back 7 days later: too far; p2 (day 2) is back on day 4; p4's first
    # order is on day 10, p5's on day 12.
    assert [(c.start, c.size, c.retained) for c in report.cohorts] == [
        (date(2001, 3, 6), 1, [1, 0, 0, 0]),
        (date(2001, 3, 7), 1, [1, 0, 1, 0]),
        (date(2001, 3, 15), 1, [1, 0, 0, 0]),
        (date(2001, 3, 17), 1, [1, 0, 0, 0]),
    ]


async def test_daily_cohorts_by_first_visit(history: AsyncSession) -> None:
    report = await retention(history, period="day", cohort="first_visit")
    # p1 and p4 on day 1 (p1 back on day 8: too far), p2 on day 2 (back on day 4), p5 on
    # day 12; p3 was first seen before the range.
    assert table(report) == [
        (date(2001, 3, 6), 2, [2, 0, 0, 0]),
        (date(2001, 3, 7), 1, [1, 0, 1, 0]),
        (date(2001, 3, 17), 1, [1, 0, 0, 0]),
    ]


async def test_first_visit_cohorts_come_from_the_rollups(
    history: AsyncSession, db_sessions: SessionFactory
) -> None:
    """By first visit, retention reads the people's first visits and the days' people
    that the rollup keeps: an event is counted once its hour is rolled up, not before."""
    before = table(await retention(history, cohort="first_visit"))
    async with db_sessions() as session:
        session.add(event("p6", "product_view", T0 + 9 * D))
        session.add(event("p6", "search", T0 + 16 * D))
        await session.commit()
    assert table(await retention(history, cohort="first_visit")) == before
    await RollupService(db_sessions).recompute([hour_of(T0 + 9 * D), hour_of(T0 + 16 * D)])
    assert table(await retention(history, cohort="first_visit")) == [
        (date(2001, 3, 5), 3, [3, 2, 1, 1]),
        (date(2001, 3, 12), 2, [2, 2, 0]),
    ]


async def test_first_order_cohorts_come_from_the_rollups(
    history: AsyncSession, db_sessions: SessionFactory
) -> None:
    """By first order too: an order is counted once its hour is rolled up; a late order,
    earlier than a person's first, moves them to an earlier cohort."""
    before = table(await retention(history))
    async with db_sessions() as session:
        session.add(event("p5", "order_complete", T0 + 3 * D))  # late: before day 12
        await session.commit()
    assert table(await retention(history)) == before
    await RollupService(db_sessions).recompute([hour_of(T0 + 3 * D)])
    # p5 now first ordered in week 0, and is back in week 1 (day 12); week 1 keeps p4.
    assert table(await retention(history)) == [
        (date(2001, 3, 5), 3, [3, 2, 0, 1]),
        (date(2001, 3, 12), 1, [1, 1, 0]),
    ]


def _raw_cohorts(
    events: list[AnalyticsEvent], cohort_by: str, start: datetime, length: timedelta
) -> list[tuple[date, int, list[int]]]:
    """The cohort table counted here from the raw events: a cohort's people first did
    the cohort's event (an order, or anything) in its period; period k counts those who
    did it again in the k-th period after."""
    counted = [e for e in events if cohort_by == "first_visit" or e.event == "order_complete"]
    firsts: dict[str, datetime] = {}
    for e in counted:
        firsts[e.person_id] = min(e.created_at, firsts.get(e.person_id, e.created_at))
    expected: dict[datetime, list[set[str]]] = {}
    for person, first_at in firsts.items():
        if start <= first_at < start + 21 * D:
            cohort = start + (first_at - start) // length * length
            expected.setdefault(cohort, [set() for _ in range(5)])[0].add(person)
    for e in counted:
        for cohort, sets in expected.items():
            k = (e.created_at - cohort) // length
            if e.person_id in sets[0] and 1 <= k <= 4:
                sets[k].add(e.person_id)
    return [
        (cohort.date(), len(sets[0]), [len(s) for s in sets])
        for cohort, sets in sorted(expected.items())
    ]


async def test_retention_equals_a_count_over_the_raw_events(
    db_sessions: SessionFactory,
) -> None:
    """Random visits and orders of 150 people over 7 weeks (some before the range), rolled
    up, against cohorts counted here from the raw events, by first visit and by first
    order, weekly and daily; then late events (earlier than some people's first order or
    visit) rolled up hour by hour, and the same comparison again."""
    rng = Random(14)
    start = datetime(2002, 4, 1, tzinfo=UTC)  # a Monday
    rollups = RollupService(db_sessions)

    def drawn(person: str, first: datetime) -> AnalyticsEvent:
        name = "order_complete" if rng.random() < 0.3 else "product_view"
        return event(person, name, first + timedelta(hours=rng.randrange(28 * 24)))

    events: list[AnalyticsEvent] = []
    for n in range(150):
        first = start + timedelta(hours=rng.randrange(-240, 21 * 24))
        events += [drawn(f"r{n}", first) for _ in range(rng.randrange(1, 9))]
    async with db_sessions() as session:
        session.add_all(events)
        await session.commit()
    await rollups.recompute(sorted({hour_of(e.created_at) for e in events}))
    now = start + timedelta(days=49)

    async def compare() -> None:
        for cohort_by in ("first_visit", "first_order"):
            for period, length in (("week", timedelta(weeks=1)), ("day", D)):
                parsed = RetentionQuery.parse(
                    period=period,
                    periods=4,
                    cohort=cohort_by,
                    time_range=None,
                    start=start,
                    end=start + 21 * D,
                    now=now,
                )
                async with db_sessions() as session:
                    report = await RetentionService(session).retention(parsed, now)
                expected = _raw_cohorts(events, cohort_by, start, length)
                assert len(expected) > 2
                assert table(report) == expected, (cohort_by, period)

    await compare()
    late = [
        event(f"r{n}", "order_complete", start + timedelta(hours=rng.randrange(-48, 21 * 24)))
        for n in rng.sample(range(150), 40)
    ]
    async with db_sessions() as session:
        session.add_all(late)
        await session.commit()
    events += late
    for hour in sorted({hour_of(e.created_at) for e in late}):
        await rollups.recompute([hour])
    await compare()
