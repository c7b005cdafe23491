"""GET /api/analytics/dashboard over HTTP: staff only, the ranges, and the 422s naming
the field (the figures themselves: tests/analytics/test_dashboard.py)."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.factories import signed_up

PATH = "/api/analytics/dashboard"


async def test_staff_read_the_seed_dashboard(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    response = await client.get(f"{PATH}?timeRange=7d", headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"range", "sales", "users", "products", "conversion", "series", "timestamp"}
    assert body["range"]["timeRange"] == "7d"
    assert body["range"]["granularity"] == "hour"
    assert body["range"]["compare"] == "previous_period"
    assert len(body["series"]["points"]) == 168
    assert len(body["series"]["previousPoints"]) == 168
    assert [s["step"] for s in body["conversion"]["steps"]] == [
        "product_view",
        "add_to_cart",
        "checkout_start",
        "payment_start",
        "order_complete",
    ]
    assert {"revenue", "orders", "avgOrderValue", "refunds", "netRevenue", "byCurrency"} <= set(
        body["sales"]
    )


async def test_long_ranges_are_daily_and_compare_none_drops_the_previous_period(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    response = await client.get(f"{PATH}?timeRange=30d&compare=none", headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["range"]["granularity"] == "day"
    # UTC days: the range's first and last days are partial unless it starts at midnight.
    start = datetime.fromisoformat(body["range"]["from"])
    assert len(body["series"]["points"]) == (30 if start.hour == 0 else 31)
    assert body["series"]["points"][1]["at"].endswith("T00:00:00Z")
    assert body["series"]["previousPoints"] is None
    assert body["range"]["previousFrom"] is None
    custom = await client.get(
        f"{PATH}?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z", headers=staff
    )
    assert custom.status_code == 200, custom.text
    assert custom.json()["range"]["timeRange"] == "custom"
    assert custom.json()["range"]["previousFrom"] == "2023-12-31T00:00:00Z"


async def test_bad_ranges_answer_422_naming_the_field(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    for query, field in (
        ("timeRange=8d", "timeRange"),
        ("from=2024-01-01T00:00:00Z", "to"),
        ("to=2024-01-01T00:00:00Z", "from"),
        ("from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
        ("from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
        ("timeRange=7d&from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z", "timeRange"),
    ):
        response = await client.get(f"{PATH}?{query}", headers=staff)
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_time_range", query
        assert response.json()["field"] == field, query


async def test_customers_may_not_read_it(client: httpx.AsyncClient) -> None:
    _, auth = await signed_up(client)
    response = await client.get(PATH, headers=auth)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "staff_only"
    assert (await client.get(PATH)).status_code == 401
