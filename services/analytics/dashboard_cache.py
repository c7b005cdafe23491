"""Dashboards this API process has worked out, reused until the rollups move.

The dashboard reads rollups only, and the rollups change only when a rollup run
recomputes hours and then moves its watermark (every minute): a dashboard for the same
range and comparison, worked out under the same watermark, is the same (but for its
``timestamp``). The range is its label too (``7d``, or ``custom`` for ``from``/``to``
naming the same hours: the same figures, another ``range.timeRange``). A hit costs one
read of the watermark. What is not a rollup (the low-stock list, and the products'
names) may be up to one rollup run old on a hit."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from models.analytics_dashboard import Dashboard

# (range label, start, end, compare, the rollups' watermark)
CacheKey = tuple[str, datetime, datetime, bool, datetime | None]


class DashboardCache:
    """The last ``entries`` dashboards (least recently used out); 0 keeps none."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._found: OrderedDict[CacheKey, Dashboard] = OrderedDict()

    def get(self, key: CacheKey) -> Dashboard | None:
        found = self._found.get(key)
        if found is not None:
            self._found.move_to_end(key)
        return found

    def put(self, key: CacheKey, dashboard: Dashboard) -> None:
        if self.entries <= 0:
            return
        # Earlier watermarks' answers will not be asked for again.
        for stale in [k for k in self._found if k[-1] != key[-1]]:
            del self._found[stale]
        self._found[key] = dashboard
        self._found.move_to_end(key)
        while len(self._found) > self.entries:
            self._found.popitem(last=False)
