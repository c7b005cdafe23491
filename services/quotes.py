"""The one pricing function: a cart's lines, discounts, coupon, shipping and tax.

The cart's JSON and the order's validate-order step both take their numbers from
``quote``, so what a shopper is shown is what the order charges.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from core.money import percent_of
from core.settings import Settings
from models.carts import Cart, CartItem
from models.quotes import Destination, Quote, QuoteCoupon, QuoteLine
from services.catalog.coupons import CouponService
from services.catalog.pricing import price_book
from services.catalog.product_repository import ProductRepository


def tax_rate(settings: Settings, destination: Destination | None) -> int:
    """Basis points for a destination ("COUNTRY-STATE" beats "COUNTRY"); without one,
    the configured default destination's."""
    if destination is None:
        destination = Destination(
            country=settings.default_tax_country, state=settings.default_tax_state
        )
    rates = {k.upper(): v for k, v in settings.tax_rates.items()}
    country = destination.country.upper()
    if destination.state and f"{country}-{destination.state.upper()}" in rates:
        return rates[f"{country}-{destination.state.upper()}"]
    return rates.get(country, 0)


async def quote(
    session: AsyncSession,
    settings: Settings,
    cart: Cart,
    items: Sequence[CartItem],
    destination: Destination | None = None,
) -> Quote:
    """Price ``items`` of ``cart`` now, for ``destination`` (the default one if None).

    Lines at their effective price (the largest automatic discount), then the cart's
    coupon on what that leaves, flat-rate shipping below the free threshold, and tax on
    the discounted goods; every amount rounded half-even to minor units.

    Free shipping is judged on the goods at their sale prices, before the coupon: a
    coupon takes off its discount and nothing else, so it never brings shipping back
    (judged after it, 10.00 off a 55.00 cart added 5.99 of shipping, and 1.00 off
    raised the total).
    """
    products = await ProductRepository(session).by_ids([i.product_id for i in items])
    prices = await price_book(session)
    lines: list[QuoteLine] = []
    for item in items:
        product = products[item.product_id]
        unit = prices.effective_price(product)
        lines.append(
            QuoteLine(
                product_id=product.id,
                name=product.name,
                slug=product.slug,
                sku=product.sku,
                quantity=item.quantity,
                unit_price=product.price,
                effective_unit_price=unit,
                line_discount=(product.price - unit) * item.quantity,
                line_total=unit * item.quantity,
            )
        )
    subtotal = sum(line.unit_price * line.quantity for line in lines)
    automatic = sum(line.line_discount for line in lines)
    goods = at_sale_prices = subtotal - automatic
    coupon = None
    if cart.coupon_code:
        verdict = await CouponService(session).check(
            cart.coupon_code, goods, cart.currency, cart.user_id
        )
        coupon = QuoteCoupon(
            code=cart.coupon_code,
            amount=verdict.discount if verdict.valid else 0,
            problem=None if verdict.valid else verdict.reason,
        )
        goods -= coupon.amount
    threshold = settings.shipping_free_threshold
    free = not lines or (threshold is not None and at_sale_prices >= threshold)
    shipping = 0 if free else settings.shipping_flat_rate
    rate = Decimal(tax_rate(settings, destination)) / 100
    tax = percent_of(goods, rate) if goods > 0 else 0
    return Quote(
        foreign_currency=tuple(
            i.product_id for i in items if products[i.product_id].currency != cart.currency
        ),
        off_sale=tuple(
            i.product_id
            for i in items
            if not products[i.product_id].active or products[i.product_id].deleted_at is not None
        ),
        currency=cart.currency,
        lines=lines,
        subtotal=subtotal,
        automatic_discounts=automatic,
        coupon=coupon,
        shipping=shipping,
        tax=tax,
        total=goods + shipping + tax,
    )
