"""``AnalyticsStore`` on the shop's own PostgreSQL: the dashboard from the hourly rollups
(``rollups.py``), the funnel and retention from the time-indexed events."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics_dashboard import Dashboard
from models.analytics_funnel import FunnelReport, RetentionReport
from services.analytics.dashboard import DashboardQuery, DashboardReader
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.retention import RetentionQuery, RetentionService


class PostgresAnalyticsStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        return await DashboardReader(self.session).dashboard(query)

    async def funnel(self, query: FunnelQuery, now: datetime) -> FunnelReport:
        return await FunnelService(self.session).funnel(query, now)

    async def retention(self, query: RetentionQuery, now: datetime) -> RetentionReport:
        return await RetentionService(self.session).retention(query, now)
