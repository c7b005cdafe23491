"""Hourly rollups, kept by a Temporal Schedule every minute (``AnalyticsRollupWorkflow``).

Each run finds the hours touched since its watermark (events received, orders and
payments changed, refunds made) and recomputes exactly those hours from raw rows: delete
and insert, one transaction per hour, so a run repeated (or retried) gives the same rows.
A late event (its ``created_at`` up to 24 h back) is received now, so its hour is
recomputed. Rows written by a transaction that began before the watermark but committed
after it are caught by reading ``OVERLAP`` back from the watermark.

A run goes a UTC day at a time, oldest first, then relinks people a batch at a time, and
commits how far it got with each (``RunMarks``): a first run over a long history outlasts
its activity's timeout, and the next attempt (or the schedule's next run) resumes at the
day, or the person, it was at, not at the first hour. The watermark moves, and the run's
marks go, once it is whole."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.db import SessionFactory, transaction
from services.analytics.links import LinkRepository, batches
from services.analytics.rollup_repository import DAY, EPOCH, HOUR, OVERLAP, RollupRepository

__all__ = [
    "OVERLAP",
    "RefreshOutcome",
    "RollupProgress",
    "RollupRepository",
    "RollupService",
    "day_groups",
]


def day_groups(hours: Sequence[datetime], streams: int) -> list[list[datetime]]:
    """``hours`` in at most ``streams`` groups holding whole UTC days (days dealt in turn),
    so that groups recomputed side by side never share a day's row."""
    days: dict[datetime, list[datetime]] = defaultdict(list)
    for hour in sorted(set(hours)):
        days[hour.replace(hour=0)].append(hour)
    ordered = [days[day] for day in sorted(days)]
    groups = [ordered[n :: max(1, streams)] for n in range(max(1, streams))]
    return [[hour for day in group for hour in day] for group in groups if group]


@dataclass(frozen=True)
class RefreshOutcome:
    hours: int
    refund_hours: int
    watermark: datetime


@dataclass(frozen=True)
class RollupProgress:
    """Where a run is: its step (``hours``, ``relink``), what it just finished there (an
    hour, ISO 8601; the last person of a batch), and how many of the step's are done."""

    step: str
    at: str
    done: int
    of: int


Progress = Callable[[RollupProgress], None]


class RollupService:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    async def refresh(self, progress: Progress | None = None) -> RefreshOutcome:
        """Recompute the hours touched since the watermark and relink the people with
        events received since (``links.py``), then move the watermark to when this run
        began. A run that fails part-way leaves the watermark where it was, and its
        marks (when it began, the days it finished, the last person it relinked): the
        next run reads from the same watermark, skips the finished days and the people
        relinked, and moves the watermark to when the first began (each step is
        idempotent; what changed after that in what was done is the next run's).
        ``progress`` hears of each hour recomputed and each batch relinked. The outcome
        counts the hours this call recomputed."""
        async with transaction(self.sessions) as session:
            rollups = RollupRepository(session)
            marks = await rollups.run_marks()
            began = marks.began
            if began is None:
                began = await rollups.now()
                await rollups.begin_run(began)
            watermark = await rollups.watermark()
            since = None if watermark is None else watermark - OVERLAP
            await rollups.unlink_erased(since)
            hours, refund_hours = await rollups.touched_hours(since)
        if marks.through is not None:
            hours = [h for h in hours if h >= marks.through]
            refund_hours = [h for h in refund_hours if h >= marks.through]
        await self.recompute(hours, refund_hours, progress=progress, checkpoint=True)
        async with transaction(self.sessions) as session:
            pending = await LinkRepository(session).pending(since or EPOCH)
        if marks.relinked is not None:
            # Those after the last one relinked (in this sort order); one who became
            # pending since, sorted before it, has events after ``began``: the next run's.
            pending = [p for p in pending if p > marks.relinked]
        await self.relink(pending, progress=progress, checkpoint=True)
        async with transaction(self.sessions) as session:
            await RollupRepository(session).set_watermark(began)
        return RefreshOutcome(len(hours), len(refund_hours), began)

    async def relink(
        self,
        people: Sequence[str],
        *,
        progress: Progress | None = None,
        checkpoint: bool = False,
    ) -> None:
        """Every event of ``people`` (sorted) linked to its person's previous event
        (``links.py``), a batch of people a transaction; with ``checkpoint`` the batch's
        last person is committed with it, as how far the run got."""
        done = 0
        for batch in batches(people):
            async with transaction(self.sessions) as session:
                await LinkRepository(session).relink(batch)
                if checkpoint:
                    await RollupRepository(session).run_relinked(batch[-1])
            done += len(batch)
            if progress is not None:
                progress(RollupProgress(step="relink", at=batch[-1], done=done, of=len(people)))

    async def watermark(self) -> datetime | None:
        async with transaction(self.sessions) as session:
            return await RollupRepository(session).watermark()

    async def rebuild(self, hours: Sequence[datetime], *, streams: int = 1) -> RefreshOutcome:
        """Recompute ``hours`` whatever the watermark (a bulk import written with its past
                receipt times, which a refresh would not see again), in ``streams`` groups of
                whole days side by side; then move the watermark to when this began and refresh
                what changed meanwhile; the people with events in those hours are relinked
        (``links.py``). The outcome counts every hour recomputed."""
        async with transaction(self.sessions) as session:
            began = await RollupRepository(session).now()
        await asyncio.gather(*(self.recompute(group) for group in day_groups(hours, streams)))
        if hours:
            async with transaction(self.sessions) as session:
                people = await LinkRepository(session).active(min(hours), max(hours) + HOUR)
            await self.relink(people)
        async with transaction(self.sessions) as session:
            await RollupRepository(session).set_watermark(began)
        outcome = await self.refresh()
        return RefreshOutcome(len(hours) + outcome.hours, outcome.refund_hours, outcome.watermark)

    async def recompute(
        self,
        hours: Sequence[datetime],
        refund_hours: Sequence[datetime] = (),
        *,
        progress: Progress | None = None,
        checkpoint: bool = False,
    ) -> None:
        """A UTC day at a time, oldest first: each hour in its own transaction (readers
        see an hour before or after, whole), then the day's rows from its hours; with
        ``checkpoint`` the day's end is committed with them, as how far the run got."""
        by_hour: dict[datetime, list[str]] = defaultdict(list)
        for hour in hours:
            by_hour[hour].append("all")
        for hour in refund_hours:
            by_hour[hour].append("refunds")
        days: dict[datetime, list[datetime]] = defaultdict(list)
        for hour in sorted(by_hour):
            days[hour.replace(hour=0)].append(hour)
        done = 0
        for day, day_hours in sorted(days.items()):
            for hour in day_hours:
                async with transaction(self.sessions) as session:
                    rollups = RollupRepository(session)
                    if "all" in by_hour[hour]:
                        await rollups.recompute_hour(hour)
                    if "refunds" in by_hour[hour]:
                        await rollups.recompute_refund_hour(hour)
                done += 1
                if progress is not None:
                    progress(
                        RollupProgress(
                            step="hours", at=hour.isoformat(), done=done, of=len(by_hour)
                        )
                    )
            whole_hours = any("all" in by_hour[h] for h in day_hours)
            if whole_hours or checkpoint:
                async with transaction(self.sessions) as session:
                    rollups = RollupRepository(session)
                    if whole_hours:
                        await rollups.recompute_day(day)
                    if checkpoint:
                        await rollups.run_done_through(day + DAY)
