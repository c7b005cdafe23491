"""``AnalyticsStore``: the only way the API reads analytics.

Today one implementation, ``PostgresAnalyticsStore`` (``services/analytics/postgres.py``):
the dashboard over the hourly rollups, the funnel and retention over the time-indexed
events. README "Growing out of one machine: ClickHouse" says how a ClickHouse one would
come in behind this same interface."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from models.analytics_dashboard import Dashboard
from models.analytics_funnel import FunnelReport, RetentionReport
from services.analytics.dashboard import DashboardQuery
from services.analytics.funnel import FunnelQuery
from services.analytics.retention import RetentionQuery


class AnalyticsStore(Protocol):
    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        """Sales, users, products, conversion and series for ``query.range``."""
        ...

    async def funnel(self, query: FunnelQuery, now: datetime) -> FunnelReport:
        """Per step: people, conversion, dropped, still in window, median time."""
        ...

    async def retention(self, query: RetentionQuery, now: datetime) -> RetentionReport:
        """Cohorts by first order or visit, and who came back in each later period."""
        ...
