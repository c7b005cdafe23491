"""Examples of analytics: tracking events, the dashboard, the funnel and retention.

Seven days ending 2026-12-06 16:00 UTC (hourly points; two shown), compared with the
seven before; money in minor units."""

from __future__ import annotations

from api.examples.common import CURRENCY, PRODUCT_ID

FROM = "2026-11-29T16:00:00Z"
TO = "2026-12-06T16:00:00Z"
NOW = "2026-12-06T16:00:04Z"
HEADPHONES = {"productId": PRODUCT_ID, "name": "Wireless Headphones"}
PEOPLE = (900, 200, 120, 80, 52)
FUNNEL = [
    {"step": "product_view", "people": 900, "rate": 1.0},
    {"step": "add_to_cart", "people": 200, "rate": 0.2222},
    {"step": "checkout_start", "people": 120, "rate": 0.1333},
    {"step": "payment_start", "people": 80, "rate": 0.0889},
    {"step": "order_complete", "people": 52, "rate": 0.0578},
]
DASHBOARD = {
    "range": {
        "timeRange": "7d",
        "from": FROM,
        "to": TO,
        "granularity": "hour",
        "compare": "previous_period",
        "previousFrom": "2026-11-22T16:00:00Z",
        "previousTo": FROM,
    },
    "sales": {
        "currency": CURRENCY,
        "revenue": 1234500,
        "orders": 52,
        "avgOrderValue": 23740,
        "revenueGrowth": 0.125,
        "ordersGrowth": -0.05,
        "refunds": 4500,
        "netRevenue": 1230000,
        "previous": {"revenue": 1097333, "orders": 55, "refunds": 0, "netRevenue": 1097333},
        "byCurrency": [
            {
                "currency": CURRENCY,
                "revenue": 1234500,
                "orders": 52,
                "avgOrderValue": 23740,
                "refunds": 4500,
                "netRevenue": 1230000,
                "revenueGrowth": 0.125,
                "ordersGrowth": -0.05,
            }
        ],
    },
    "users": {
        "newUsers": 12,
        "activeUsers": 340,
        "retentionRate": 0.21,
        "userGrowth": 0.1,
        "previous": {"newUsers": 11, "activeUsers": 309},
    },
    "products": {
        "currency": CURRENCY,
        "topByRevenue": [HEADPHONES | {"revenue": 359960, "currency": CURRENCY, "units": 40}],
        "topByRevenueByCurrency": [],
        "topByUnits": [HEADPHONES | {"units": 40}],
        "mostViewed": [HEADPHONES | {"views": 610}],
        "viewToPurchase": [HEADPHONES | {"views": 610, "purchases": 31, "rate": 0.0508}],
        "lowStock": [HEADPHONES | {"available": 7, "lowStockThreshold": 10}],
    },
    "conversion": {"steps": FUNNEL},
    "series": {
        "granularity": "hour",
        "currency": CURRENCY,
        "points": [
            {"at": "2026-12-06T14:00:00Z", "revenue": 17998, "orders": 1, "activeUsers": 9},
            {"at": "2026-12-06T15:00:00Z", "revenue": 36120, "orders": 2, "activeUsers": 14},
        ],
        "previousPoints": [
            {"at": "2026-11-29T14:00:00Z", "revenue": 0, "orders": 0, "activeUsers": 6},
            {"at": "2026-11-29T15:00:00Z", "revenue": 23740, "orders": 1, "activeUsers": 11},
        ],
        "byCurrency": [],
    },
    "timestamp": NOW,
}


def _step(index: int, step: str, median: float | None) -> dict[str, object]:
    count, first = PEOPLE[index], PEOPLE[0]
    previous = PEOPLE[index - 1] if index else count
    following = PEOPLE[index + 1] if index + 1 < len(PEOPLE) else count
    return {
        "step": step,
        "count": count,
        "conversionFromPrevious": round(count / previous, 4),
        "conversionFromStart": round(count / first, 4),
        "dropped": count - following,
        "inWindow": 0,
        "medianSecondsFromPrevious": median,
    }


FUNNEL_REPORT = {
    "steps": [
        _step(0, "product_view", None),
        _step(1, "add_to_cart", 312.5),
        _step(2, "checkout_start", 640.0),
        _step(3, "payment_start", 95.0),
        _step(4, "order_complete", 12.0),
    ],
    "order": "ordered",
    "window": "14d",
    "stepWindows": None,
    "range": {"timeRange": "7d", "from": FROM, "to": TO, "granularity": "hour"},
    "breakdown": None,
    "timestamp": NOW,
}
RETENTION = {
    "period": "week",
    "cohortBy": "first_order",
    "periods": 2,
    "range": {"timeRange": "90d", "from": "2026-09-07T16:00:00Z", "to": TO, "granularity": "day"},
    "cohorts": [
        {"start": "2026-09-07", "size": 40, "retained": [40, 9, 6], "rates": [1.0, 0.225, 0.15]},
        {"start": "2026-09-14", "size": 35, "retained": [35, 7, 5], "rates": [1.0, 0.2, 0.1429]},
    ],
    "timestamp": NOW,
}

RESPONSES: dict[str, dict[int, object]] = {
    "POST /api/analytics/track": {202: {"accepted": 1}},
    "GET /api/analytics/dashboard": {200: DASHBOARD},
    "GET /api/analytics/funnel": {200: FUNNEL_REPORT},
    "GET /api/analytics/retention": {200: RETENTION},
}
REQUESTS: dict[str, object] = {}
