"""``GET /api/analytics/dashboard``: what it answers (camelCase on the wire).

Rates and growths are fractions rounded to 4 decimals (0.125 = 12.5 %); a growth is null
when the previous value is 0. Money is integer minor units with its currency, never
summed across currencies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from models.base import CamelModel

Compare = Literal["previous_period", "none"]


class RangePublic(CamelModel):
    time_range: str = Field(examples=["7d"])
    from_: datetime = Field(alias="from")
    to: datetime
    granularity: Literal["hour", "day"]
    compare: Compare
    previous_from: datetime | None = None
    previous_to: datetime | None = None


class CurrencySales(CamelModel):
    currency: str = Field(examples=["USD"])
    revenue: int = Field(examples=[1234500])
    orders: int = Field(examples=[52])
    avg_order_value: int = Field(examples=[23740])
    refunds: int = Field(examples=[4500])
    net_revenue: int = Field(examples=[1230000])
    revenue_growth: float | None = Field(default=None, examples=[0.125])
    orders_growth: float | None = Field(default=None, examples=[-0.05])


class PreviousSales(CamelModel):
    revenue: int
    orders: int
    refunds: int
    net_revenue: int


class SalesPublic(CamelModel):
    """The top-level figures are for ``currency``, the shop's main currency in range."""

    currency: str = Field(examples=["USD"])
    revenue: int
    orders: int
    avg_order_value: int
    revenue_growth: float | None
    orders_growth: float | None
    refunds: int
    net_revenue: int
    previous: PreviousSales | None
    by_currency: list[CurrencySales]


class PreviousUsers(CamelModel):
    new_users: int
    active_users: int


class UsersPublic(CamelModel):
    new_users: int = Field(examples=[12])
    active_users: int = Field(examples=[340])
    retention_rate: float | None = Field(
        examples=[0.21],
        description="Of the people active in the previous period, the share active again "
        "in this one (null when nobody was active then, or with compare=none)",
    )
    user_growth: float | None = Field(examples=[0.1])
    previous: PreviousUsers | None


class ProductSales(CamelModel):
    product_id: str
    name: str | None
    revenue: int
    currency: str
    units: int


class ProductUnits(CamelModel):
    """A product's units sold in range, whatever the currency of each sale (units,
    unlike revenue, add up across currencies)."""

    product_id: str
    name: str | None
    units: int


class ProductViews(CamelModel):
    product_id: str
    name: str | None
    views: int


class ProductConversion(CamelModel):
    product_id: str
    name: str | None
    views: int
    purchases: int = Field(description="Orders (sales) that held the product")
    rate: float | None


class LowStock(CamelModel):
    product_id: str
    name: str | None
    available: int
    low_stock_threshold: int


class CurrencyProducts(CamelModel):
    """One currency's best sellers by revenue: revenues are ranked within a currency,
    never against another's (1,000 yen is not more than 9.99 dollars)."""

    currency: str = Field(examples=["EUR"])
    top_by_revenue: list[ProductSales]


class ProductsPublic(CamelModel):
    currency: str = Field(
        examples=["USD"], description="topByRevenue's: the shop's main currency (sales')"
    )
    top_by_revenue: list[ProductSales] = Field(
        description="The best sellers in the main currency, ranked by its revenue"
    )
    top_by_revenue_by_currency: list[CurrencyProducts] = Field(
        description="Each currency with product sales in range, its own ranking (the main "
        "one included)"
    )
    top_by_units: list[ProductUnits] = Field(
        description="The most units sold, each product once: its units in every currency"
    )
    most_viewed: list[ProductViews]
    view_to_purchase: list[ProductConversion]
    low_stock: list[LowStock]


class ConversionStep(CamelModel):
    step: str = Field(examples=["add_to_cart"])
    people: int = Field(examples=[200])
    rate: float = Field(examples=[0.2222], description="people / people at the first step")


class ConversionPublic(CamelModel):
    steps: list[ConversionStep]


class SeriesPoint(CamelModel):
    at: datetime
    revenue: int
    orders: int
    active_users: int


class MoneyPoint(CamelModel):
    at: datetime
    revenue: int
    orders: int


class CurrencySeries(CamelModel):
    """One currency's sales over the same points: currencies are charted side by side,
    never summed."""

    currency: str = Field(examples=["EUR"])
    points: list[MoneyPoint]
    previous_points: list[MoneyPoint] | None


class SeriesPublic(CamelModel):
    """``points`` carry the main currency's sales (``currency``) and active users;
    ``byCurrency`` every currency sold in the range or the previous one, main included."""

    granularity: Literal["hour", "day"]
    currency: str
    points: list[SeriesPoint]
    previous_points: list[SeriesPoint] | None
    by_currency: list[CurrencySeries]


class Dashboard(CamelModel):
    range: RangePublic
    sales: SalesPublic
    users: UsersPublic
    products: ProductsPublic
    conversion: ConversionPublic
    series: SeriesPublic
    timestamp: datetime
