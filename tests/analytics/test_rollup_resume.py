"""A refresh that stops part-way (its activity timed out, its worker died) resumes where
it stopped, on the real database: the days it finished are committed with how far it got,
the next refresh starts at the day it was in and moves the watermark to when the first
began. Before, the watermark alone was kept: each attempt started again at the first hour,
and a first run over a long history never finished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from activities.analytics import AnalyticsActivities
from core.db import SessionFactory
from services.analytics import links
from services.analytics.rollup_repository import RunMarks
from services.analytics.rollups import RollupProgress, RollupRepository, RollupService
from tests.analytics.rows import event
from tests.analytics.test_rollups import raw_hour, rolled_hour
from workflows.types.analytics import RollupInput

DAY1 = datetime(2024, 2, 10, tzinfo=UTC)
HOURS = [DAY1 + timedelta(days=d, hours=h) for d in range(3) for h in (3, 20)]


class Stopped(Exception):
    """The attempt's end (a timeout, a lost worker), where the test chooses."""


def _hour(progress: RollupProgress, into: list[datetime]) -> None:
    if progress.step == "hours":
        into.append(datetime.fromisoformat(progress.at))


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
    first: list[str] = []

    def stop_in_the_second_day(progress: RollupProgress) -> None:
        first.append(progress.at)
        if progress.at == HOURS[2].isoformat():  # day 2's first hour is done, not its day
            raise Stopped()

    try:
        await rollups.refresh(progress=stop_in_the_second_day)
    except Stopped:
        pass
    else:
        raise AssertionError("the first refresh was to stop")
    assert first[-3:] == [h.isoformat() for h in HOURS[:3]]
    async with db_sessions() as session:
        marks = await RollupRepository(session).run_marks()
    assert marks.began is not None
    assert marks.through == DAY1 + timedelta(days=1)
    assert marks.relinked is None

    again: list[datetime] = []
    outcome = await rollups.refresh(progress=lambda p: _hour(p, again))
    assert not [h for h in again if h < marks.through]  # day 1 is not recomputed again
    assert set(HOURS[2:]) <= set(again)  # day 2 from its first hour, and day 3
    assert outcome.hours == len(again)
    assert outcome.watermark == marks.began == await rollups.watermark()
    async with db_sessions() as session:
        assert await RollupRepository(session).run_marks() == RunMarks()
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
    hours = {b["at"] for b in beats if isinstance(b, dict) and b.get("step") == "hours"}
    assert {h.isoformat() for h in HOURS} <= hours
    assert any(isinstance(b, dict) and b.get("step") == "relink" for b in beats)
    assert beats[0] == {}  # alive before the first hour is done


async def test_a_refresh_stopped_while_relinking_resumes_after_the_last_person_relinked(
    db_sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollups = RollupService(db_sessions)
    await rollups.refresh()
    await _events(db_sessions)
    monkeypatch.setattr(links, "BATCH", 2)  # people relinked per transaction

    pending: list[int] = []

    def stop_after_a_batch(progress: RollupProgress) -> None:
        if progress.step == "relink":
            pending.append(progress.of)
            raise Stopped()

    with pytest.raises(Stopped):
        await rollups.refresh(progress=stop_after_a_batch)
    async with db_sessions() as session:
        marks = await RollupRepository(session).run_marks()
    assert marks.relinked is not None
    assert marks.through is not None
    assert marks.through > HOURS[-1]

    relinked: list[RollupProgress] = []
    hours: list[datetime] = []

    def record(progress: RollupProgress) -> None:
        _hour(progress, hours)
        if progress.step == "relink":
            relinked.append(progress)

    await rollups.refresh(progress=record)
    assert hours == []  # every day was done
    assert relinked
    # Not the first batch again: the people after the last one relinked, fewer.
    assert relinked[0].at > marks.relinked
    assert relinked[0].of == pending[0] - 2
    async with db_sessions() as session:
        result = await session.exec(  # type: ignore[call-overload]
            text(
                "SELECT count(*) FROM analytics_events e LEFT JOIN analytics_event_links l "
                "USING (id) WHERE e.person_id LIKE 'user_rs%' AND l.id IS NULL"
            )
        )
        assert result.scalar_one() == 0  # every event linked, before the mark and after
