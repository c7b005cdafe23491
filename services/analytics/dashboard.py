"""The dashboard, read from the hourly rollups only (never from raw events).

Hours are read by their start: a range ``[from, to)`` takes the hours that start in it
(a preset range ends at the end of the current hour, which the rollup schedule
recomputes every minute: figures are at most about a minute behind)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from core.money import DEFAULT_CURRENCY
from models.analytics import FUNNEL_STEPS
from models.analytics_dashboard import (
    ConversionPublic,
    ConversionStep,
    CurrencyProducts,
    CurrencySales,
    CurrencySeries,
    Dashboard,
    LowStock,
    MoneyPoint,
    PreviousSales,
    PreviousUsers,
    ProductConversion,
    ProductSales,
    ProductsPublic,
    ProductUnits,
    ProductViews,
    RangePublic,
    SalesPublic,
    SeriesPoint,
    SeriesPublic,
    UsersPublic,
)
from models.analytics_rollups import ANY_EVENT
from services.analytics.dashboard_repository import (
    TOP,
    DashboardRepository,
    Money,
    Periods,
    ProductFigures,
)
from services.analytics.people import (
    DAY,
    PeopleAsk,
    PeopleRepository,
    PeopleRow,
    edge_unions,
    midnight,
    total,
    union,
)
from services.analytics.ranges import TimeRange
from services.catalog.product_repository import ProductRepository
from services.inventory.stock import StockService

HOUR = timedelta(hours=1)
USER_CREATED = "user_created"


@dataclass(frozen=True)
class DashboardQuery:
    range: TimeRange
    compare: bool = True
    now: datetime | None = None


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def growth(current: int, previous: int) -> float | None:
    return round((current - previous) / previous, 4) if previous else None


def _buckets(span: TimeRange) -> list[datetime]:
    """Series points: hours from the range's start, or UTC days (the first and last may be
    partial: a point's ``at`` is where its piece of the range starts)."""
    if span.granularity == "hour":
        return [span.start + i * HOUR for i in range(-(-span.length // HOUR))]
    # The day after the one the range starts in (next_midnight of a midnight is itself).
    points, day = [span.start], midnight(span.start) + DAY
    while day < span.end:
        points.append(day)
        day += DAY
    return points


def _bucket_of(span: TimeRange, at: datetime) -> datetime:
    if span.granularity == "hour":
        return span.start + ((at - span.start) // HOUR) * HOUR
    return max(span.start, midnight(at))


class DashboardReader:
    """A hit makes a handful of statements, each for both periods at once: sales and
    refunds; the people pieces (and hourly counts); products; the series' sales; low
    stock and the products' names."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.rollups = DashboardRepository(session)
        self.people = PeopleRepository(session)

    async def dashboard(self, query: DashboardQuery) -> Dashboard:
        span = query.range
        before = span.previous() if query.compare else None
        periods = Periods(span, before)
        money, old_money = await self.rollups.money(periods)
        currency = _main_currency(money) or _main_currency(old_money) or DEFAULT_CURRENCY
        people = await self.people.rows(self._people_asks(periods))
        now_rows, old_rows = people["now"], people.get("before", [])
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
            users=self._users(now_rows, old_rows if before else None),
            products=await self._products(currency, await self.rollups.products(span)),
            conversion=_conversion(now_rows),
            series=await self._all_series(periods, currency, people),
            timestamp=query.now or span.end,
        )

    @staticmethod
    def _people_asks(periods: Periods) -> list[PeopleAsk]:
        span, before = periods.span, periods.before
        asks = [PeopleAsk("now", span.start, span.end, (ANY_EVENT, USER_CREATED, *FUNNEL_STEPS))]
        if before is not None:
            asks.append(PeopleAsk("before", before.start, before.end, (ANY_EVENT, USER_CREATED)))
        if span.granularity == "hour":
            # The series' points are each hour's own count, the previous period's too.
            asks.append(PeopleAsk("hours", periods.start, span.end, (ANY_EVENT,), counts_only=True))
        return asks

    def _sales(
        self, currency: str, now: dict[str, Money], then: dict[str, Money], *, compare: bool
    ) -> SalesPublic:
        rows = [_currency_sales(c, now[c], then.get(c), compare) for c in sorted(now)]
        main = next(
            (r for r in rows if r.currency == currency),
            _currency_sales(currency, Money(), then.get(currency), compare),
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

    def _users(self, now: list[PeopleRow], before: list[PeopleRow] | None) -> UsersPublic:
        active = union(now, ANY_EVENT)
        new_users = total(now, USER_CREATED)
        if before is None:
            return UsersPublic(
                new_users=new_users,
                active_users=active.bit_count(),
                retention_rate=None,
                user_growth=None,
                previous=None,
            )
        was_active = union(before, ANY_EVENT)
        return UsersPublic(
            new_users=new_users,
            active_users=active.bit_count(),
            retention_rate=rate((active & was_active).bit_count(), was_active.bit_count()),
            user_growth=growth(active.bit_count(), was_active.bit_count()),
            previous=PreviousUsers(
                new_users=total(before, USER_CREATED),
                active_users=was_active.bit_count(),
            ),
        )

    async def _products(self, currency: str, figures: ProductFigures) -> ProductsPublic:
        """Revenue is ranked within each currency (the main one is ``topByRevenue``, as
        the headline sales are), never across: 5,000 yen is not more than 20 dollars."""
        sold = figures.sold
        by_currency = {
            c: _top([s for s in sold if s[1] == c], key=lambda s: (-s[2], s[0], s[1]))
            for c in sorted({s[1] for s in sold})
        }
        by_revenue = by_currency.get(currency, [])
        # Units add up across currencies: one row per product, whatever it sold in.
        units: dict[str, int] = defaultdict(int)
        for product_id, _, _, sold_units, _ in sold:
            units[product_id] += sold_units
        by_units = [
            ProductUnits(product_id=p, name=None, units=u)
            for p, u in sorted(units.items(), key=lambda pu: (-pu[1], pu[0]))[:TOP]
        ]
        viewed = [ProductViews(product_id=p, name=None, views=v) for p, v in figures.viewed]
        purchases: dict[str, int] = defaultdict(int)
        for product_id, _, _, _, orders in sold:
            purchases[product_id] += orders
        low, _ = await StockService(self.session).low(offset=0, limit=TOP)
        ranked = [p for tops in by_currency.values() for p in tops]
        names = await self._names(
            [p.product_id for p in ranked]
            + [u.product_id for u in by_units]
            + [v.product_id for v in viewed]
            + [s.product_id for s in low]
        )
        for top in ranked:
            top.name = names.get(top.product_id)
        for most in by_units:
            most.name = names.get(most.product_id)
        for seen in viewed:
            seen.name = names.get(seen.product_id)
        return ProductsPublic(
            currency=currency,
            top_by_revenue=by_revenue,
            top_by_revenue_by_currency=[
                CurrencyProducts(currency=c, top_by_revenue=tops) for c, tops in by_currency.items()
            ],
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

    async def _all_series(
        self, periods: Periods, currency: str, people: dict[str, list[PeopleRow]]
    ) -> SeriesPublic:
        span, before = periods.span, periods.before
        by_currency = await self.rollups.sales_by_hour(periods.start, span.end)
        sales = by_currency.get(currency, {})
        hours = people.get("hours", [])
        return SeriesPublic(
            granularity=span.granularity,
            currency=currency,
            points=_series(span, sales, people["now"], hours),
            previous_points=_series(before, sales, people["before"], hours) if before else None,
            by_currency=[
                CurrencySeries(
                    currency=c,
                    points=_money_points(span, by_currency[c]),
                    previous_points=_money_points(before, by_currency[c]) if before else None,
                )
                for c in sorted(by_currency)
            ],
        )


def _bucketed(span: TimeRange, sales: dict[datetime, Money]) -> dict[datetime, Money]:
    """The hours' sales summed into the span's points."""
    points: dict[datetime, Money] = defaultdict(Money)
    for hour, money in sales.items():
        if span.start <= hour < span.end:
            point = points[_bucket_of(span, hour)]
            points[_bucket_of(span, hour)] = Money(
                orders=point.orders + money.orders, revenue=point.revenue + money.revenue
            )
    return points


def _money_points(span: TimeRange, sales: dict[datetime, Money]) -> list[MoneyPoint]:
    money = _bucketed(span, sales)
    return [
        MoneyPoint(at=at, revenue=money[at].revenue, orders=money[at].orders)
        for at in _buckets(span)
    ]


def _series(
    span: TimeRange,
    sales: dict[datetime, Money],
    pieces: list[PeopleRow],
    hours: list[PeopleRow],
) -> list[SeriesPoint]:
    money = _bucketed(span, sales)
    points = _buckets(span)
    active = _active(span, points, pieces, hours)
    return [
        SeriesPoint(
            at=at, revenue=money[at].revenue, orders=money[at].orders, active_users=active[at]
        )
        for at in points
    ]


def _active(
    span: TimeRange, points: list[datetime], pieces: list[PeopleRow], hours: list[PeopleRow]
) -> dict[datetime, int]:
    """People per point: the rollup row's own count for an hour or a whole day, the
    union of its hours for a partial day at either end of the range."""
    active: dict[datetime, int] = defaultdict(int)
    if span.granularity == "hour":
        for row in hours:
            if span.start <= row.at < span.end:
                active[_bucket_of(span, row.at)] = row.people
        return active
    days = {r.at: r.people for r in pieces if r.unit == "day" and r.event == ANY_EVENT}
    edges = edge_unions(pieces, ANY_EVENT)
    for at, end in zip(points, [*points[1:], span.end], strict=True):
        if end - at == DAY and at == midnight(at):
            active[at] = days.get(at, 0)
        else:
            active[at] = edges.get(midnight(at), 0).bit_count()
    return active


def _main_currency(money: dict[str, Money]) -> str | None:
    """The currency with the most orders (None: no money at all); a tie goes to the
    default currency, then the last code. Never the most revenue: minor units of two
    currencies are not comparable (5,000 yen, about 33 dollars, beat 30.00 USD). With
    none in the range, the previous period's: a shop that sold nothing compares its
    nothing with what it sold then, not with the default currency's nothing."""
    if not money:
        return None
    return max(money, key=lambda c: (money[c].orders, c == DEFAULT_CURRENCY, c))


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


def _conversion(rows: list[PeopleRow]) -> ConversionPublic:
    counts = [union(rows, step).bit_count() for step in FUNNEL_STEPS]
    first = counts[0]
    return ConversionPublic(
        steps=[
            ConversionStep(step=step, people=n, rate=rate(n, first) or 0.0)
            for step, n in zip(FUNNEL_STEPS, counts, strict=True)
        ]
    )
