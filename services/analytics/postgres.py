"""``AnalyticsStore`` on the shop's own PostgreSQL: the dashboard from the hourly rollups
(``rollups.py``), the funnel and retention from the time-indexed events."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics_dashboard import Dashboard
from models.analytics_funnel import FunnelReport, RetentionReport
from services.analytics.dashboard import DashboardQuery, DashboardReader
from services.analytics.dashboard_cache import DashboardCache
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.retention import RetentionQuery, RetentionService
from services.analytics.rollups import RollupRepository


class PostgresAnalyticsStore:
    def __init__(
        self, session: AsyncSession, cache: DashboardCache | None = None, *, parallelism: int = 1
    ) -> None:
        self.session = session
        self.cache = cache
        # Connections a funnel reads on side by side (``FunnelRepository``).
        self.parallelism = parallelism

    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        """Worked out from the rollups, or this process's answer for the same range under
        the same rollup watermark (``DashboardCache``), with this hit's timestamp."""
        if self.cache is None:
            return await DashboardReader(self.session).dashboard(query)
        watermark = await RollupRepository(self.session).watermark()
        span = query.range
        key = (span.label, span.start, span.end, query.compare, watermark)
        found = self.cache.get(key)
        if found is not None:
            return found.model_copy(update={"timestamp": query.now or query.range.end})
        dashboard = await DashboardReader(self.session).dashboard(query)
        self.cache.put(key, dashboard)
        return dashboard

    async def funnel(self, query: FunnelQuery, now: datetime) -> FunnelReport:
        return await FunnelService(self.session, self.parallelism).funnel(query, now)

    async def retention(self, query: RetentionQuery, now: datetime) -> RetentionReport:
        return await RetentionService(self.session).retention(query, now)
