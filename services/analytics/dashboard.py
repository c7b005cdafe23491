"""The dashboard, read from the hourly rollups only (never from raw events).

Hours are read by their start: a range ``[from, to)`` takes the hours that start in it
(a preset range ends at the end of the current hour, which the rollup schedule
recomputes every minute: figures are at most about a minute behind)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from models.analytics import FUNNEL_STEPS
from models.analytics_dashboard import (
    ConversionPublic,
    ConversionStep,
    CurrencySales,
    Dashboard,
    LowStock,
    PreviousSales,
    PreviousUsers,
    ProductConversion,
    ProductSales,
    ProductsPublic,
    ProductViews,
    RangePublic,
    SalesPublic,
    SeriesPoint,
    SeriesPublic,
    UsersPublic,
)
from models.analytics_rollups import ANY_EVENT
from services.analytics.people import DAY, PeopleReader, midnight, next_midnight
from services.analytics.ranges import TimeRange
from services.catalog.products import ProductRepository
from services.inventory.stock import StockService

DEFAULT_CURRENCY = "USD"
TOP = 10
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class DashboardQuery:
    range: TimeRange
    compare: bool = True
    now: datetime | None = None


@dataclass(frozen=True)
class Money:
    orders: int = 0
    revenue: int = 0
    refunds: int = 0


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def growth(current: int, previous: int) -> float | None:
    return round((current - previous) / previous, 4) if previous else None


class DashboardRepository:
    """Reads of the rollup tables, each over ``[start, end)`` by hour start."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        result = await self.session.exec(text(sql), params=params)  # type: ignore[call-overload]
        return [tuple(r) for r in result.all()]

    async def sales(self, span: TimeRange) -> dict[str, Money]:
        sold = await self._rows(
            "SELECT currency, sum(orders), sum(revenue) FROM analytics_sales_hourly "
            "WHERE hour >= :start AND hour < :end GROUP BY currency",
            start=span.start,
            end=span.end,
        )
        refunded = await self._rows(
            "SELECT currency, sum(amount) FROM analytics_refund_hourly "
            "WHERE hour >= :start AND hour < :end GROUP BY currency",
            start=span.start,
            end=span.end,
        )
        money = {c: Money(orders=int(o), revenue=int(r)) for c, o, r in sold}
        for currency, amount in refunded:
            base = money.get(currency, Money())
            money[currency] = Money(base.orders, base.revenue, int(amount))
        return money

    async def sales_by_hour(self, span: TimeRange, currency: str) -> dict[datetime, Money]:
        rows = await self._rows(
            "SELECT hour, orders, revenue FROM analytics_sales_hourly "
            "WHERE hour >= :start AND hour < :end AND currency = :currency",
            start=span.start,
            end=span.end,
            currency=currency,
        )
        return {h: Money(orders=o, revenue=r) for h, o, r in rows}

    async def event_count(self, span: TimeRange, event: str) -> int:
        rows = await self._rows(
            "SELECT coalesce(sum(events), 0) FROM analytics_event_hourly "
            "WHERE hour >= :start AND hour < :end AND event = :event",
            start=span.start,
            end=span.end,
            event=event,
        )
        return int(rows[0][0])

    async def product_sales(self, span: TimeRange) -> list[tuple[str, str, int, int, int]]:
        """(product, currency, revenue, units, orders) of every product sold in range."""
        rows = await self._rows(
            "SELECT product_id, currency, sum(revenue), sum(units), sum(orders) "
            "FROM analytics_product_sales_hourly WHERE hour >= :start AND hour < :end "
            "GROUP BY product_id, currency",
            start=span.start,
            end=span.end,
        )
        return [(p, c, int(r), int(u), int(o)) for p, c, r, u, o in rows]

    async def most_viewed(self, span: TimeRange) -> list[ProductViews]:
        rows = await self._rows(
            "SELECT product_id, sum(views) FROM analytics_product_view_hourly "
            "WHERE hour >= :start AND hour < :end "
            "GROUP BY product_id ORDER BY sum(views) DESC, product_id LIMIT :top",
            start=span.start,
            end=span.end,
            top=TOP,
        )
        return [ProductViews(product_id=p, name=None, views=int(v)) for p, v in rows]


def _buckets(span: TimeRange) -> list[datetime]:
    """Series points: hours from the range's start, or UTC days (the first and last may be
    partial: a point's ``at`` is where its piece of the range starts)."""
    if span.granularity == "hour":
        return [span.start + i * HOUR for i in range(-(-span.length // HOUR))]
    points, day = [span.start], next_midnight(span.start)
    while day < span.end:
        points.append(day)
        day += DAY
    return points


def _bucket_of(span: TimeRange, at: datetime) -> datetime:
    if span.granularity == "hour":
        return span.start + ((at - span.start) // HOUR) * HOUR
    return max(span.start, midnight(at))


class DashboardReader:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.rollups = DashboardRepository(session)
        self.people = PeopleReader(session)

    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        span = query.range
        before = span.previous() if query.compare else None
        money = await self.rollups.sales(span)
        old_money = await self.rollups.sales(before) if before else {}
        currency = max(money, key=lambda c: (money[c].revenue, c)) if money else DEFAULT_CURRENCY
        people = await self.people.unions(span.start, span.end, (ANY_EVENT, *FUNNEL_STEPS))
        was_active = (
            (await self.people.unions(before.start, before.end, (ANY_EVENT,)))[ANY_EVENT]
            if before
            else 0
        )
        return Dashboard(
            range=RangePublic(
                time_range=span.label,
                **{"from": span.start},
                to=span.end,
                granularity=span.granularity,
                compare="previous_period" if before else "none",
                previous_from=before.start if before else None,
                previous_to=before.end if before else None,
            ),
            sales=self._sales(currency, money, old_money, compare=before is not None),
            users=await self._users(span, before, people[ANY_EVENT], was_active),
            products=await self._products(span),
            conversion=_conversion(people),
            series=SeriesPublic(
                granularity=span.granularity,
                currency=currency,
                points=await self._series(span, currency),
                previous_points=await self._series(before, currency) if before else None,
            ),
            timestamp=query.now or span.end,
        )

    def _sales(
        self, currency: str, now: dict[str, Money], then: dict[str, Money], *, compare: bool
    ) -> SalesPublic:
        rows = [_currency_sales(c, now[c], then.get(c), compare) for c in sorted(now)]
        main = next(
            (r for r in rows if r.currency == currency),
            _currency_sales(currency, Money(), None, compare),
        )
        old = then.get(currency, Money())
        return SalesPublic(
            currency=currency,
            revenue=main.revenue,
            orders=main.orders,
            avg_order_value=main.avg_order_value,
            revenue_growth=main.revenue_growth,
            orders_growth=main.orders_growth,
            refunds=main.refunds,
            net_revenue=main.net_revenue,
            previous=PreviousSales(
                revenue=old.revenue,
                orders=old.orders,
                refunds=old.refunds,
                net_revenue=old.revenue - old.refunds,
            )
            if compare
            else None,
            by_currency=rows,
        )

    async def _users(
        self,
        span: TimeRange,
        before: TimeRange | None,
        active: int,
        was_active: int,
    ) -> UsersPublic:
        new_users = await self.rollups.event_count(span, "user_created")
        if before is None:
            return UsersPublic(
                new_users=new_users,
                active_users=active.bit_count(),
                retention_rate=None,
                user_growth=None,
                previous=None,
            )
        return UsersPublic(
            new_users=new_users,
            active_users=active.bit_count(),
            retention_rate=rate((active & was_active).bit_count(), was_active.bit_count()),
            user_growth=growth(active.bit_count(), was_active.bit_count()),
            previous=PreviousUsers(
                new_users=await self.rollups.event_count(before, "user_created"),
                active_users=was_active.bit_count(),
            ),
        )

    async def _products(self, span: TimeRange) -> ProductsPublic:
        sold = await self.rollups.product_sales(span)
        by_revenue = _top(sold, key=lambda s: (-s[2], s[0], s[1]))
        by_units = _top(sold, key=lambda s: (-s[3], s[0], s[1]))
        viewed = await self.rollups.most_viewed(span)
        purchases: dict[str, int] = defaultdict(int)
        for product_id, _, _, _, orders in sold:
            purchases[product_id] += orders
        low, _ = await StockService(self.session).low(offset=0, limit=TOP)
        names = await self._names(
            [p.product_id for p in (*by_revenue, *by_units)]
            + [v.product_id for v in viewed]
            + [s.product_id for s in low]
        )
        for top in (*by_revenue, *by_units):
            top.name = names.get(top.product_id)
        for seen in viewed:
            seen.name = names.get(seen.product_id)
        return ProductsPublic(
            top_by_revenue=by_revenue,
            top_by_units=by_units,
            most_viewed=viewed,
            view_to_purchase=[
                ProductConversion(
                    product_id=v.product_id,
                    name=v.name,
                    views=v.views,
                    purchases=purchases.get(v.product_id, 0),
                    rate=rate(purchases.get(v.product_id, 0), v.views),
                )
                for v in viewed
            ],
            low_stock=[
                LowStock(
                    product_id=s.product_id,
                    name=names.get(s.product_id),
                    available=s.available,
                    low_stock_threshold=s.threshold,
                )
                for s in low
            ],
        )

    async def _names(self, product_ids: Iterable[str]) -> dict[str, str]:
        products = await ProductRepository(self.session).by_ids(sorted(set(product_ids)))
        return {p.id: p.name for p in products.values()}

    async def _series(self, span: TimeRange, currency: str) -> list[SeriesPoint]:
        sales = await self.rollups.sales_by_hour(span, currency)
        orders: dict[datetime, int] = defaultdict(int)
        revenue: dict[datetime, int] = defaultdict(int)
        for hour, money in sales.items():
            orders[_bucket_of(span, hour)] += money.orders
            revenue[_bucket_of(span, hour)] += money.revenue
        points = _buckets(span)
        active = await self._active(span, points)
        return [
            SeriesPoint(at=at, revenue=revenue[at], orders=orders[at], active_users=active[at])
            for at in points
        ]

    async def _active(self, span: TimeRange, points: list[datetime]) -> dict[datetime, int]:
        """People per point: the rollup row's own count for an hour or a whole day, the
        union of its hours for a partial day at either end of the range."""
        if span.granularity == "hour":
            counts = await self.people.hourly_counts(span.start, span.end, ANY_EVENT)
            active: dict[datetime, int] = defaultdict(int)
            for hour, people in counts.items():
                active[_bucket_of(span, hour)] = people
            return active
        days = await self.people.daily_counts(span.start, span.end, ANY_EVENT)
        active = defaultdict(int)
        for at, end in zip(points, [*points[1:], span.end], strict=True):
            if end - at == DAY and at == midnight(at):
                active[at] = days.get(at, 0)
            else:
                union = await self.people.unions(at, end, (ANY_EVENT,))
                active[at] = union[ANY_EVENT].bit_count()
        return active


def _top(
    sold: list[tuple[str, str, int, int, int]],
    key: Callable[[tuple[str, str, int, int, int]], tuple[int, str, str]],
) -> list[ProductSales]:
    return [
        ProductSales(product_id=p, name=None, currency=c, revenue=r, units=u)
        for p, c, r, u, _ in sorted(sold, key=key)[:TOP]
    ]


def _currency_sales(currency: str, now: Money, then: Money | None, compare: bool) -> CurrencySales:
    old = then or Money()
    return CurrencySales(
        currency=currency,
        revenue=now.revenue,
        orders=now.orders,
        avg_order_value=round(now.revenue / now.orders) if now.orders else 0,
        refunds=now.refunds,
        net_revenue=now.revenue - now.refunds,
        revenue_growth=growth(now.revenue, old.revenue) if compare else None,
        orders_growth=growth(now.orders, old.orders) if compare else None,
    )


def _conversion(people: dict[str, int]) -> ConversionPublic:
    counts = [people[step].bit_count() for step in FUNNEL_STEPS]
    first = counts[0]
    return ConversionPublic(
        steps=[
            ConversionStep(step=step, people=n, rate=rate(n, first) or 0.0)
            for step, n in zip(FUNNEL_STEPS, counts, strict=True)
        ]
    )
