"""Funnel and retention readings (staff), through the ``AnalyticsStore``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AnalyticsReader
from api.problems import problem_responses
from api.security import StaffUser
from core.errors import ValidationFailed
from models.analytics_funnel import FunnelReport, RetentionReport
from models.base import IsoDatetime, utcnow
from services.analytics.funnel import FunnelQuery
from services.analytics.ranges import InvalidTimeRange
from services.analytics.retention import RetentionQuery

router = APIRouter(prefix="/analytics", tags=["analytics"])

# The text parameters take no length cap: each parser refuses what it does not know with
# the parameter's own code (`invalid_window`, `invalid_order`, …), however long, as the
# dashboard's `timeRange` does; a cap answered `validation_error` for a long bad value.

TimeRangeParam = Annotated[
    str | None,
    Query(
        alias="timeRange",
        description="`24h`, `7d`, `30d`, `90d` or `12m`, ending now",
        examples=["7d"],
    ),
]
FromParam = Annotated[
    IsoDatetime | None,
    Query(
        alias="from",
        description="Start (ISO 8601, with `to`; replaces `timeRange`)",
        examples=["2026-11-01T00:00:00Z"],
    ),
]
ToParam = Annotated[
    IsoDatetime | None,
    Query(alias="to", description="End, exclusive (at most 400 days after `from`)"),
]


@router.get(
    "/funnel",
    summary="Conversion funnel (staff)",
    response_model=FunnelReport,
    responses=problem_responses(
        InvalidTimeRange,
        (ValidationFailed, "invalid_funnel_step"),
        (ValidationFailed, "invalid_window"),
        (ValidationFailed, "invalid_order"),
        (ValidationFailed, "invalid_breakdown"),
    ),
)
async def funnel(
    caller: StaffUser,
    store: AnalyticsReader,
    time_range: TimeRangeParam = None,
    start: FromParam = None,
    end: ToParam = None,
    steps: Annotated[
        str | None,
        Query(
            description="Event names, comma-separated (2 to 10; custom events allowed); "
            "default the seed's five",
            examples=["product_view,add_to_cart,order_complete"],
        ),
    ] = None,
    window: Annotated[
        str | None,
        Query(
            description="Conversion window from entry: `30m`, `2h`, `14d` (at most 90d)",
            examples=["14d"],
        ),
    ] = None,
    order: Annotated[
        str | None,
        Query(description="`ordered`, `strict` or `any`", examples=["ordered"]),
    ] = None,
    step_windows: Annotated[
        str | None,
        Query(
            alias="stepWindows",
            description="Per step after the first, the most time from the previous step",
            examples=["1h,1d,30m,30m"],
        ),
    ] = None,
    breakdown: Annotated[
        str | None,
        Query(description="`category` or `source`", examples=["source"]),
    ] = None,
) -> FunnelReport:
    """People (the user, or the anonymous id before sign-in) who did the first step in
    the range, and how far they got within `window` of it: per step `count`,
    `conversionFromPrevious`, `conversionFromStart`, `inWindow` (reached the previous
    step and can still convert), `dropped` (cannot any more) and
    `medianSecondsFromPrevious`. `order=strict` allows no other event between steps;
    `any` takes the steps after the first in any order. Definitions: README, Funnel."""
    now = utcnow()
    query = FunnelQuery.parse(
        now=now,
        time_range=time_range,
        start=start,
        end=end,
        steps=steps,
        window=window,
        order=order,
        step_windows=step_windows,
        breakdown=breakdown,
    )
    return await store.funnel(query, now)


@router.get(
    "/retention",
    summary="Retention cohorts (staff)",
    response_model=RetentionReport,
    responses=problem_responses(
        InvalidTimeRange,
        (ValidationFailed, "invalid_period"),
        (ValidationFailed, "invalid_periods"),
        (ValidationFailed, "invalid_cohort"),
    ),
)
async def retention(
    caller: StaffUser,
    store: AnalyticsReader,
    time_range: TimeRangeParam = None,
    start: FromParam = None,
    end: ToParam = None,
    period: Annotated[
        str | None,
        Query(description="`week` (default) or `day`", examples=["week"]),
    ] = None,
    periods: Annotated[
        int | None,
        Query(description="Periods after the first, 1 to 26 (default 8)", examples=[8]),
    ] = None,
    cohort: Annotated[
        str | None,
        Query(
            description="`first_order` (default) or `first_visit`",
            examples=["first_order"],
        ),
    ] = None,
) -> RetentionReport:
    """People grouped by the week (or day) of their first order (or first visit) within
    the range (default 90 days for weeks, 30 for days), and per cohort `retained[k]`:
    how many ordered again (or came back at all) in period k; `retained[0]` is the
    cohort's `size`. Periods that have not begun yet are left out, not zero."""
    now = utcnow()
    query = RetentionQuery.parse(
        period=period,
        periods=periods,
        cohort=cohort,
        time_range=time_range,
        start=start,
        end=end,
        now=now,
    )
    return await store.retention(query, now)
