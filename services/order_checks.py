"""What validate-order refuses to charge, judged on the cart's quote before anything is
written, held or charged: each refusal has a stable code, and the order fails at once
(the cart stays open for the shopper to fix)."""

from __future__ import annotations

from core.errors import Conflict, ShopError, ValidationFailed
from integrations.payments.gateway import MAX_CHARGE, min_charge
from integrations.payments.stripe_units import max_charge, to_stripe
from models.quotes import Quote


class CartEmpty(ValidationFailed):
    code = "cart_empty"
    title = "The cart is empty"


class PriceChanged(Conflict):
    code = "price_changed"
    title = "The order no longer costs what the shopper was shown"


def refuse_unchargeable(priced: Quote, expected_total: int | None) -> None:
    """Raise why ``priced`` cannot be ordered as it stands, if it cannot: nothing in it,
    a product taken off sale or repriced in another currency since it was added, a total
    one payment cannot take (too large, above 0 and below Stripe's minimum charge, or no
    amount Stripe can write in its currency), a coupon that no longer applies, or a total
    other than the ``expected_total`` the shopper was shown."""
    if not priced.lines:
        raise CartEmpty("there is nothing in the cart to order")
    if priced.off_sale:
        # As ``POST /cart/items`` refuses it: taken off sale since it was added.
        raise ValidationFailed(
            "no longer for sale: " + ", ".join(priced.off_sale),
            code="product_inactive",
            productIds=list(priced.off_sale),
        )
    if priced.foreign_currency:
        # Repriced in another currency since it was added: never charged as the cart's.
        raise ValidationFailed(
            f"priced in another currency than the cart's ({priced.currency}): "
            + ", ".join(priced.foreign_currency),
            code="currency_mismatch",
            productIds=list(priced.foreign_currency),
        )
    limit = max_charge(priced.currency, MAX_CHARGE)
    if max(priced.subtotal, priced.total) > limit:
        # Refused before its lines are written: they may not fit the order's columns.
        # The subtotal bounds every line and discount (a coupon can make a total
        # small whose lines are not). In our minor units: Stripe's eight digits are
        # 999,999 ISK (it writes ISK with two decimals).
        raise ValidationFailed(
            f"the order ({priced.subtotal} minor units at list price, {priced.total} "
            f"to pay) is more than one payment can take ({limit})",
            code="order_total_too_large",
            subtotal=priced.subtotal,
            total=priced.total,
            limit=limit,
        )
    if 0 < priced.total < min_charge(priced.currency):
        # Stripe refuses it (``amount_too_small``); a total of 0 is charged nothing.
        raise ValidationFailed(
            f"the total ({priced.total} minor units) is less than one payment can take "
            f"({min_charge(priced.currency)})",
            code="order_total_too_small",
            total=priced.total,
            minimum=min_charge(priced.currency),
        )
    if priced.total > 0:
        # A total Stripe cannot take exactly (fractions of an ariary, a KWD amount not
        # ending in 0): ``amount_not_representable``, never charged as another amount.
        to_stripe(priced.total, priced.currency)
    if priced.coupon is not None and priced.coupon.problem:
        raise ValidationFailed(
            f"the coupon no longer applies: {priced.coupon.problem}",
            code="coupon_not_applicable",
        )
    if expected_total is not None and priced.total != expected_total:
        raise PriceChanged(
            f"the order costs {priced.total} now, not the {expected_total} shown",
            expectedTotal=expected_total,
            total=priced.total,
        )


def checkout_problem(priced: Quote) -> str | None:
    """The code validate-order would refuse ``priced`` with now (None: none of these
    refusals): what a cart shows before checkout, judged by the same rules."""
    try:
        refuse_unchargeable(priced, None)
    except ShopError as refusal:
        return refusal.code
    return None
