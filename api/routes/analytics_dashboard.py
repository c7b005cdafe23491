"""The analytics dashboard (staff): sales, users, products, conversion and series."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AnalyticsReader
from api.problems import problem_responses
from api.security import StaffUser
from models.analytics_dashboard import Compare, Dashboard
from models.base import IsoDatetime, utcnow
from services.analytics.dashboard import DashboardQuery
from services.analytics.ranges import PRESETS, InvalidTimeRange, resolve_range

router = APIRouter(prefix="/analytics", tags=["analytics"])


@router.get(
    "/dashboard",
    summary="Sales, users, products, conversion and charts for a time range (staff)",
    response_model=Dashboard,
    responses=problem_responses(InvalidTimeRange),
)
async def dashboard(
    caller: StaffUser,
    store: AnalyticsReader,
    time_range: Annotated[
        str | None,
        Query(
            alias="timeRange",
            description="A preset range ending with the current hour (default `7d`)",
            examples=["7d"],
            json_schema_extra={"enum": list(PRESETS)},
        ),
    ] = None,
    start: Annotated[
        IsoDatetime | None,
        Query(
            alias="from",
            description="Start of a custom range (ISO 8601, with `to`)",
            examples=["2026-11-01T00:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        IsoDatetime | None,
        Query(
            alias="to",
            description="End of a custom range, exclusive (at most 400 days after `from`)",
            examples=["2026-11-08T00:00:00Z"],
        ),
    ] = None,
    compare: Annotated[
        Compare,
        Query(description="`none` leaves out the previous period", examples=["previous_period"]),
    ] = "previous_period",
) -> Dashboard:
    """The seed's dashboard: `sales` (revenue, orders, average order value, refunds and
    net revenue of the main currency, growth against the previous period of the same
    length, and every currency in `byCurrency`), `users` (new, active, `retentionRate`:
    of the people active in the previous period, the share active again in this one,
    `userGrowth`), `products` (top by revenue and units, most viewed, view-to-purchase,
    low stock), `conversion` (people at each step of the seed's funnel) and `series`
    (revenue, orders and active users per hour up to 7 days, per day beyond). Money is
    in minor units with its currency; rates and growths are fractions. Read from hourly
    rollups kept every minute. An unknown `timeRange`, or `from` without `to`, answers
    422 `invalid_time_range` naming the `field`."""
    now = utcnow()
    span = resolve_range(time_range, start, end, now)
    return await store.dashboard(
        DashboardQuery(range=span, compare=compare == "previous_period", now=now)
    )
