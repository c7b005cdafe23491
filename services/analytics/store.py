"""``AnalyticsStore``: the only way the API reads analytics.

Today one implementation, ``PostgresAnalyticsStore`` (``services/analytics/postgres.py``),
over the hourly rollups; an event store that outgrows one PostgreSQL (ClickHouse) comes
in behind this same interface."""

from __future__ import annotations

from typing import Protocol

from models.analytics_dashboard import Dashboard
from services.analytics.dashboard import DashboardQuery


class AnalyticsStore(Protocol):
    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        """Sales, users, products, conversion and series for ``query.range``."""
        ...
