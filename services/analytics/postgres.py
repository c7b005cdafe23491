"""``AnalyticsStore`` on PostgreSQL: the hourly rollups (``rollups.py``) and their readers."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics_dashboard import Dashboard
from services.analytics.dashboard import DashboardQuery, DashboardReader


class PostgresAnalyticsStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        return await DashboardReader(self.session).dashboard(query)
