"""A cart's JSON, rendered from its ``Quote``: what it costs now, and what checkout
would refuse in it as it stands (a product taken off sale or repriced in another
currency since it was added, more than is in stock, or the refusals of the whole cart
validate-order makes), so a shopper fixes the cart before placing the order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.carts import Cart, CartItem, CartLine, CartPublic, CartTotals
from models.quotes import Quote, QuoteLine
from services.order_checks import checkout_problem


def line_problem(line: QuoteLine, priced: Quote, available: int) -> str | None:
    """Why checkout refuses this line now (the code it refuses it with), or None."""
    if line.product_id in priced.off_sale:
        return "product_inactive"
    if line.product_id in priced.foreign_currency:
        return "currency_mismatch"
    if line.quantity > available:
        return "out_of_stock"
    return None


def render_cart(
    cart: Cart,
    token: str | None,
    items: Sequence[CartItem],
    priced: Quote,
    available: Mapping[str, int],
) -> CartPublic:
    at_add = {i.product_id: i.unit_price_at_add for i in items}
    lines = [
        CartLine(
            product_id=line.product_id,
            name=line.name,
            slug=line.slug,
            quantity=line.quantity,
            unit_price=line.effective_unit_price,
            unit_price_at_add=at_add[line.product_id],
            price_changed=line.effective_unit_price != at_add[line.product_id],
            line_total=line.line_total,
            available=available.get(line.product_id, 0),
            problem=line_problem(line, priced, available.get(line.product_id, 0)),
        )
        for line in priced.lines
    ]
    # The whole cart's refusal first (in validate-order's order), then stock, which the
    # reserve step after it refuses.
    problem = checkout_problem(priced) or next((ln.problem for ln in lines if ln.problem), None)
    return CartPublic(
        id=cart.id,
        cart_token=token,
        user_id=cart.user_id,
        currency=priced.currency,
        items=lines,
        coupon_code=cart.coupon_code,
        coupon_problem=priced.coupon.problem if priced.coupon is not None else None,
        totals=CartTotals(
            subtotal=priced.subtotal,
            automatic_discounts=priced.automatic_discounts,
            coupon_discount=priced.coupon_discount,
            shipping=priced.shipping,
            tax=priced.tax,
            total=priced.total,
        ),
        checkout_ready=problem is None,
        checkout_problem=problem,
        updated_at=cart.updated_at,
    )
