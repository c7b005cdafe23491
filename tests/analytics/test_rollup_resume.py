"""A refresh that stops part-way (its activity timed out, its worker died) resumes where
it stopped, on the real database: the days it finished are committed with how far it got,
the next refresh starts at the day it was in and moves the watermark to when the first
began. Before, the watermark alone was kept: each attempt started again at the first hour,
and a first run over a long history never finished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.testing import ActivityEnvironment

from activities.analytics import AnalyticsActivities
from core.db import SessionFactory
from services.analytics.rollups import RollupProgress, RollupRepository, RollupService
from tests.analytics.rows import event
from tests.analytics.test_rollups import raw_hour, rolled_hour
from workflows.types.analytics import RollupInput

DAY1 = datetime(2024, 2, 10, tzinfo=UTC)
HOURS = [DAY1 + timedelta(days=d, hours=h) for d in range(3) for h in (3, 20)]


class Stopped(Exception):
    """The attempt's end (a timeout, a lost worker), where the test chooses."""


async def _events(db_sessions: SessionFactory) -> None:
    async with db_sessions() as session:
        session.add_all(
            [
                event("product_view", f"user_rs{n % 4}", hour + timedelta(minutes=n))
                for n, hour in enumerate(HOURS)
            ]
        )
        await session.commit()


async def test_a_refresh_stopped_part_way_resumes_at_the_day_it_was_in(
    db_sessions: SessionFactory,
) -> None:
    rollups = RollupService(db_sessions)
    await rollups.refresh()  # caught up: what the test adds is all there is to do
    await _events(db_sessions)
    first: list[datetime] = []

    def stop_in_the_second_day(progress: RollupProgress) -> None:
        first.append(progress.hour)
        if progress.hour == HOURS[2]:  # day 2's first hour is done, its day is not
            raise Stopped()

    try:
        await rollups.refresh(progress=stop_in_the_second_day)
    except Stopped:
        pass
    else:
        raise AssertionError("the first refresh was to stop")
    assert first[-3:] == HOURS[:3]
    async with db_sessions() as session:
        began, through = await RollupRepository(session).run_marks()
    assert began is not None
    assert through == DAY1 + timedelta(days=1)

    again: list[datetime] = []
    outcome = await rollups.refresh(progress=lambda p: again.append(p.hour))
    assert not [h for h in again if h < through]  # day 1 is not recomputed again
    assert set(HOURS[2:]) <= set(again)  # day 2 from its first hour, and day 3
    assert outcome.hours == len(again)
    assert outcome.watermark == began == await rollups.watermark()
    async with db_sessions() as session:
        assert await RollupRepository(session).run_marks() == (None, None)
        for hour in HOURS:
            assert await rolled_hour(session, hour) == await raw_hour(session, hour)
            assert (await rolled_hour(session, hour))["product_view"][0] == 1


async def test_the_activity_heartbeats_the_hour_it_reached(db_sessions: SessionFactory) -> None:
    await RollupService(db_sessions).refresh()
    await _events(db_sessions)
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.extend(details)
    result = await env.run(AnalyticsActivities(db_sessions).refresh_rollups, RollupInput())
    assert result.hours >= len(HOURS)
    hours = {b["hour"] for b in beats if isinstance(b, dict) and "hour" in b}
    assert {h.isoformat() for h in HOURS} <= hours
    assert beats[0] == {}  # alive before the first hour is done
