"""The dashboard's reads of the sales and product rollups: each statement answers for
the range and the previous period at once, and products read whole days from the daily
tables and only the edge hours from the hourly ones."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.analytics.people import Pieces
from services.analytics.ranges import TimeRange

TOP = 10


@dataclass(frozen=True)
class Money:
    orders: int = 0
    revenue: int = 0
    refunds: int = 0


@dataclass(frozen=True)
class Periods:
    """The range and, when compared, the period of the same length right before it."""

    span: TimeRange
    before: TimeRange | None

    @property
    def start(self) -> datetime:
        return self.before.start if self.before else self.span.start


@dataclass(frozen=True)
class ProductFigures:
    # (product, currency, revenue, units, orders) of every product sold in range.
    sold: list[tuple[str, str, int, int, int]]
    # (product, views) of the most viewed, most first.
    viewed: list[tuple[str, int]]


# "now": the row is in the range (else in the previous period).
MONEY = """
SELECT 'sale', hour >= :middle, currency, sum(orders), sum(revenue)
FROM analytics_sales_hourly WHERE hour >= :start AND hour < :end GROUP BY 2, 3
UNION ALL
SELECT 'refund', hour >= :middle, currency, sum(refunds), sum(amount)
FROM analytics_refund_hourly WHERE hour >= :start AND hour < :end GROUP BY 2, 3
"""
EDGE_HOURS = "((hour >= :start AND hour < :days_from) OR (hour >= :days_to AND hour < :end))"
WHOLE_DAYS = "day >= :days_from AND day < :days_to"
PRODUCTS = f"""
(SELECT 'sold', product_id, currency, sum(revenue), sum(units), sum(orders) FROM (
    SELECT product_id, currency, revenue, units, orders FROM analytics_product_sales_hourly
    WHERE {EDGE_HOURS}
    UNION ALL
    SELECT product_id, currency, revenue, units, orders FROM analytics_product_sales_daily
    WHERE {WHOLE_DAYS}
) s GROUP BY product_id, currency)
UNION ALL
(SELECT 'viewed', product_id, NULL, sum(views), NULL, NULL FROM (
    SELECT product_id, views FROM analytics_product_view_hourly WHERE {EDGE_HOURS}
    UNION ALL
    SELECT product_id, views FROM analytics_product_view_daily WHERE {WHOLE_DAYS}
) v GROUP BY product_id ORDER BY sum(views) DESC, product_id LIMIT :top)
"""


def _money(rows: list[tuple[Any, ...]], *, current: bool) -> dict[str, Money]:
    """Per currency with sales or refunds (a currency only refunded has no sales)."""
    money: dict[str, Money] = {}
    for kind, now, currency, count, amount in sorted(rows, key=lambda r: r[0] != "sale"):
        if now != current:
            continue
        if kind == "sale":
            money[currency] = Money(orders=int(count), revenue=int(amount))
        else:
            base = money.get(currency, Money())
            money[currency] = Money(base.orders, base.revenue, int(amount))
    return money


class DashboardRepository:
    """Reads of the rollup tables, each over ``[start, end)`` by hour (or day) start."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        result = await self.session.exec(text(sql), params=params)  # type: ignore[call-overload]
        return [tuple(r) for r in result.all()]

    async def money(self, periods: Periods) -> tuple[dict[str, Money], dict[str, Money]]:
        """Sales and refunds per currency: in the range, and in the previous period."""
        rows = await self._rows(
            MONEY, start=periods.start, middle=periods.span.start, end=periods.span.end
        )
        return _money(rows, current=True), _money(rows, current=False)

    async def sales_by_hour(
        self, start: datetime, end: datetime
    ) -> dict[str, dict[datetime, Money]]:
        """Each currency's sales per hour."""
        rows = await self._rows(
            "SELECT currency, hour, orders, revenue FROM analytics_sales_hourly "
            "WHERE hour >= :start AND hour < :end",
            start=start,
            end=end,
        )
        sales: dict[str, dict[datetime, Money]] = defaultdict(dict)
        for c, h, o, r in rows:
            sales[c][h] = Money(orders=o, revenue=r)
        return dict(sales)

    async def products(self, span: TimeRange) -> ProductFigures:
        pieces = Pieces.of(span.start, span.end)
        rows = await self._rows(
            PRODUCTS,
            start=pieces.start,
            end=pieces.end,
            days_from=pieces.days_from,
            days_to=pieces.days_to,
            top=TOP,
        )
        return ProductFigures(
            sold=[(p, c, int(r), int(u), int(o)) for k, p, c, r, u, o in rows if k == "sold"],
            viewed=sorted(
                ((p, int(v)) for k, p, _, v, _, _ in rows if k == "viewed"),
                key=lambda pv: (-pv[1], pv[0]),
            ),
        )
