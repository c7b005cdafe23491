"""Analytics rollups, refreshed by ``AnalyticsRollupWorkflow`` from the
``analytics-rollup`` schedule."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity

from core.db import SessionFactory
from services.analytics.rollups import RollupProgress, RollupService
from workflows.types.analytics import RollupInput, RollupResult

# How often a refresh tells Temporal it is alive, well inside the workflow's heartbeat
# timeout: also while one long statement runs (the first run's search for touched hours).
HEARTBEAT_EVERY = timedelta(seconds=20)


class AnalyticsActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._rollups = RollupService(sessions)

    @activity.defn(name="analytics.refresh_rollups")
    async def refresh_rollups(self, input: RollupInput) -> RollupResult:
        """Idempotent: each touched hour is recomputed whole from raw rows. A long run
        commits how far it got, a day of hours or a batch of people at a time (a retry
        resumes there), and heartbeats its position (step, the hour or person just
        done, how many of the step's), so a lost worker is noticed at the heartbeat
        timeout rather than the start-to-close one."""
        latest: dict[str, object] = {}

        def moved(progress: RollupProgress) -> None:
            latest.update(step=progress.step, at=progress.at, done=progress.done, of=progress.of)
            activity.heartbeat(dict(latest))  # the SDK throttles these

        async def alive() -> None:
            while True:
                activity.heartbeat(dict(latest))
                await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())

        heartbeats = asyncio.create_task(alive())
        try:
            outcome = await self._rollups.refresh(progress=moved)
        finally:
            heartbeats.cancel()
        return RollupResult(
            hours=outcome.hours, refund_hours=outcome.refund_hours, watermark=outcome.watermark
        )
