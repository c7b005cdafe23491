"""A priced cart: the one answer to "what does this cost", in integer minor units.

``services.quotes.quote`` computes it; the cart's JSON (``CartPublic``) is rendered from
it and validate-order snapshots it onto the order, so the two cannot disagree.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Destination(BaseModel):
    """Where the goods go: it decides the tax rate."""

    model_config = ConfigDict(frozen=True)

    country: str
    state: str | None = None


class QuoteLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str
    name: str
    slug: str
    sku: str | None
    quantity: int
    unit_price: int  # the list price
    effective_unit_price: int  # after the largest automatic discount
    line_discount: int  # (unit_price - effective_unit_price) * quantity
    line_total: int  # effective_unit_price * quantity


class QuoteCoupon(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    amount: int  # 0 when it does not apply
    problem: str | None = None  # why it does not apply now (a CouponVerdict reason)


class Quote(BaseModel):
    model_config = ConfigDict(frozen=True)

    currency: str
    lines: list[QuoteLine]
    subtotal: int  # the lines at list price
    automatic_discounts: int  # the sum of the lines' discounts
    coupon: QuoteCoupon | None
    shipping: int
    tax: int
    total: int
    # Lines whose product is priced in another currency than the cart's: their price is
    # not in the cart's minor units, so the figures above do not hold for them.
    foreign_currency: tuple[str, ...] = ()
    # Lines whose product staff took off sale (deactivated or deleted) since it was
    # added: a cart refuses such a product, and so does validate-order.
    off_sale: tuple[str, ...] = ()

    @property
    def discounted_subtotal(self) -> int:
        """What a coupon applies to: the goods after automatic discounts."""
        return self.subtotal - self.automatic_discounts

    @property
    def coupon_discount(self) -> int:
        return self.coupon.amount if self.coupon is not None else 0
