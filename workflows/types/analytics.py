"""``AnalyticsRollupWorkflow``'s input and result (also its activity's)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

# Recorded in every history and in the schedule, so never renamed.
ANALYTICS_ROLLUP_WORKFLOW = "AnalyticsRollupWorkflow"


class RollupInput(BaseModel):
    pass


class RollupResult(BaseModel):
    hours: int
    refund_hours: int
    watermark: datetime
