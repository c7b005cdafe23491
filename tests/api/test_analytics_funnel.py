"""GET /api/analytics/funnel and /retention over HTTP: staff only, the defaults, a data
set committed for the API to read, and every bad parameter named with its code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from models.analytics import AnalyticsEvent
from tests.factories import bearer, login, register

SEED_STEPS = ["product_view", "add_to_cart", "checkout_start", "payment_start", "order_complete"]


def problem(response: httpx.Response, code: str, field: str | None = None) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert body["field"] == field, body
        assert field in body["detail"], body


async def test_staff_only(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/analytics/funnel")).status_code == 401
    user = await register(client)
    shopper = bearer(await login(client, email=user["email"]))
    for path in ("/api/analytics/funnel", "/api/analytics/retention"):
        response = await client.get(path, headers=shopper)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "staff_only"


async def test_the_defaults(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    response = await client.get("/api/analytics/funnel", headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [step["step"] for step in body["steps"]] == SEED_STEPS
    assert (body["order"], body["window"], body["stepWindows"], body["breakdown"]) == (
        "ordered",
        "14d",
        None,
        None,
    )
    assert body["range"]["timeRange"] == "7d"
    assert body["range"]["granularity"] == "hour"
    assert set(body["steps"][1]) == {
        "step",
        "count",
        "conversionFromPrevious",
        "conversionFromStart",
        "dropped",
        "inWindow",
        "medianSecondsFromPrevious",
    }
    # The README tour's own requests.
    tour = await client.get(
        "/api/analytics/funnel?steps=product_view,add_to_cart,order_complete&window=1h"
        "&order=strict&stepWindows=30m,30m&breakdown=source",
        headers=staff,
    )
    assert tour.status_code == 200, tour.text
    assert (tour.json()["order"], tour.json()["stepWindows"]) == ("strict", ["30m", "30m"])
    assert tour.json()["breakdown"]["by"] == "source"
    tour = await client.get(
        "/api/analytics/retention?period=week&periods=8&cohort=first_order", headers=staff
    )
    assert tour.status_code == 200, tour.text
    retention = await client.get("/api/analytics/retention", headers=staff)
    assert retention.status_code == 200, retention.text
    assert (retention.json()["period"], retention.json()["periods"]) == ("week", 8)
    assert retention.json()["cohortBy"] == "first_order"
    assert retention.json()["range"]["timeRange"] == "90d"


async def test_a_committed_funnel_read_over_http(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    """Custom steps named for this test, in 2002: nothing else the suite writes counts."""
    tag = uuid4().hex[:8]
    seen, liked = f"t{tag}_seen", f"t{tag}_liked"
    start = datetime(2002, 6, 3, tzinfo=UTC)
    rows = [
        AnalyticsEvent(event=seen, person_id=f"anon:{tag}-a", created_at=start),
        AnalyticsEvent(event=liked, person_id=f"anon:{tag}-a", created_at=start + timedelta(1)),
        AnalyticsEvent(event=seen, person_id=f"anon:{tag}-b", created_at=start),
        AnalyticsEvent(event=liked, person_id=f"anon:{tag}-b", created_at=start + timedelta(3)),
    ]
    async with create_session_factory(engine)() as session:
        session.add_all(rows)
        await session.commit()
    query = {"steps": f"{seen},{liked}", "from": "2002-06-01T00:00:00Z", "to": "2002-06-08"}
    response = await client.get(
        "/api/analytics/funnel", headers=staff, params=query | {"window": "2d"}
    )
    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    assert [(s["count"], s["dropped"], s["inWindow"]) for s in steps] == [(2, 0, 0), (1, 1, 0)]
    assert steps[1]["conversionFromPrevious"] == 0.5
    assert steps[1]["medianSecondsFromPrevious"] == 86400
    assert response.json()["range"]["from"] == "2002-06-01T00:00:00Z"
    strict = await client.get(
        "/api/analytics/funnel", headers=staff, params=query | {"order": "strict"}
    )
    assert [s["count"] for s in strict.json()["steps"]] == [2, 2]  # 14 days: both


BAD_PARAMETERS: list[tuple[str, dict[str, str], str, str | None]] = [
    ("funnel", {"steps": "product_view,Add To Cart"}, "invalid_funnel_step", "steps"),
    ("funnel", {"steps": "product_view"}, "invalid_funnel_step", "steps"),
    ("funnel", {"steps": "product_view,product_view"}, "invalid_funnel_step", "steps"),
    ("funnel", {"window": "2w"}, "invalid_window", "window"),
    ("funnel", {"window": "91d"}, "invalid_window", "window"),
    ("funnel", {"stepWindows": "1h,1h"}, "invalid_window", "stepWindows"),
    ("funnel", {"stepWindows": "1h,1h,1x,1h"}, "invalid_window", "stepWindows"),
    ("funnel", {"order": "sometimes"}, "invalid_order", "order"),
    ("funnel", {"breakdown": "country"}, "invalid_breakdown", "breakdown"),
    ("funnel", {"timeRange": "5d"}, "invalid_time_range", "timeRange"),
    ("funnel", {"from": "2026-01-01T00:00:00Z"}, "invalid_time_range", "to"),
    ("funnel", {"from": "2024-01-01", "to": "2026-01-01"}, "invalid_time_range", "to"),
    ("funnel", {"from": "9999-12-30T00:00:00Z", "to": "9999-12-31"}, "invalid_time_range", "from"),
    ("retention", {"period": "month"}, "invalid_period", "period"),
    ("retention", {"from": "9999-12-01", "to": "9999-12-02"}, "invalid_time_range", "from"),
    ("retention", {"periods": "27"}, "invalid_periods", "periods"),
    ("retention", {"cohort": "first_login"}, "invalid_cohort", "cohort"),
    ("retention", {"timeRange": "1y"}, "invalid_time_range", "timeRange"),
    ("retention", {"periods": "many"}, "validation_error", None),
    # A bad value longer than the good ones is refused with the parameter's own code too
    # (length caps answered validation_error for these, where the dashboard's timeRange
    # and the funnel's stepWindows, past no cap, said invalid_*).
    ("funnel", {"timeRange": "fortnight"}, "invalid_time_range", "timeRange"),
    ("funnel", {"window": "1234567890m"}, "invalid_window", "window"),
    ("funnel", {"stepWindows": ",".join(["1h"] * 40)}, "invalid_window", "stepWindows"),
    (
        "funnel",
        {"steps": ",".join(f"step_{n}" for n in range(120))},
        "invalid_funnel_step",
        "steps",
    ),
    ("funnel", {"order": "chronologically_ordered"}, "invalid_order", "order"),
    ("funnel", {"breakdown": "utm_campaign_and_source"}, "invalid_breakdown", "breakdown"),
    ("retention", {"period": "fortnight"}, "invalid_period", "period"),
    ("retention", {"cohort": "first_subscription"}, "invalid_cohort", "cohort"),
    # ISO 8601 whose UTC is year 0: a 500 when the range was converted to UTC.
    ("funnel", {"from": "0001-01-01T00:00:00+05:00", "to": "2026-01-01"}, "validation_error", None),
    (
        "retention",
        {"from": "2026-01-01", "to": "9999-12-31T23:59:59-23:59"},
        "validation_error",
        None,
    ),
    (
        "dashboard",
        {"from": "0001-01-01T00:00:00+05:00", "to": "2026-01-01"},
        "validation_error",
        None,
    ),
    # A number is not a time (it was read as seconds since 1970).
    ("dashboard", {"from": "0.5", "to": "2026-01-01"}, "validation_error", None),
]


async def test_bad_parameters_are_named(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    for path, params, code, field in BAD_PARAMETERS:
        response = await client.get(f"/api/analytics/{path}", headers=staff, params=params)
        problem(response, code, field)
