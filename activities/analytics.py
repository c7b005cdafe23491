"""Analytics rollups, refreshed by ``AnalyticsRollupWorkflow`` from the
``analytics-rollup`` schedule."""

from __future__ import annotations

from temporalio import activity

from core.db import SessionFactory
from services.analytics.rollups import RollupService
from workflows.types.analytics import RollupInput, RollupResult


class AnalyticsActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._rollups = RollupService(sessions)

    @activity.defn(name="analytics.refresh_rollups")
    async def refresh_rollups(self, input: RollupInput) -> RollupResult:
        """Idempotent: each touched hour is recomputed whole from raw rows."""
        outcome = await self._rollups.refresh()
        return RollupResult(
            hours=outcome.hours, refund_hours=outcome.refund_hours, watermark=outcome.watermark
        )
