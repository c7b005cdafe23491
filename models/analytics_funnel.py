"""Wire schemas of the funnel and retention readings (GET /api/analytics/funnel and
/retention)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from models.base import CamelModel


class AnalyticsRange(CamelModel):
    """The range read: ``from`` inclusive, ``to`` exclusive."""

    time_range: str | None = Field(examples=["7d"])
    from_: datetime = Field(alias="from", examples=["2026-11-27T16:00:00Z"])
    to: datetime = Field(examples=["2026-12-04T16:00:00Z"])
    granularity: str = Field(examples=["hour"])


class FunnelStep(CamelModel):
    """One step: ``count`` people reached it; of those who reached the previous step and
    not this one, ``inWindow`` can still convert (their window is open) and ``dropped``
    cannot."""

    step: str = Field(examples=["add_to_cart"])
    count: int = Field(examples=[200])
    conversion_from_previous: float = Field(examples=[0.2222])
    conversion_from_start: float = Field(examples=[0.2222])
    dropped: int = Field(examples=[650])
    in_window: int = Field(examples=[50])
    median_seconds_from_previous: float | None = Field(examples=[312.5])


class FunnelGroup(CamelModel):
    value: str = Field(examples=["headphones"])
    steps: list[FunnelStep]


class FunnelBreakdown(CamelModel):
    by: str = Field(examples=["category"])
    groups: list[FunnelGroup]


class FunnelReport(CamelModel):
    steps: list[FunnelStep]
    order: str = Field(examples=["ordered"])
    window: str = Field(examples=["14d"])
    step_windows: list[str] | None = Field(examples=[None])
    range: AnalyticsRange
    breakdown: FunnelBreakdown | None
    timestamp: datetime


class RetentionCohort(CamelModel):
    """People whose first order (or visit) fell in the period starting ``start``:
    ``retained[k]`` of them were active again in period k (``retained[0]`` is ``size``);
    periods not reached yet are absent."""

    start: date = Field(examples=["2026-10-05"])
    size: int = Field(examples=[40])
    retained: list[int] = Field(examples=[[40, 9, 6]])
    rates: list[float] = Field(examples=[[1.0, 0.225, 0.15]])


class RetentionReport(CamelModel):
    period: str = Field(examples=["week"])
    cohort_by: str = Field(examples=["first_order"])
    periods: int = Field(examples=[8])
    range: AnalyticsRange
    cohorts: list[RetentionCohort]
    timestamp: datetime
