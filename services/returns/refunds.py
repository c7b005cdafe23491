"""What a return refunds: a pure function of the order's amounts and what came back.

The rule (README, Returns):

- the goods: the returned units at the price the customer paid for them (the order line's
  ``unit_price``, which already has the automatic discounts in it), for every unit
  received, damaged or not;
- less the order's coupon, spread over the lines in proportion to their value: the
  goods refunded after all returns so far are ``floor((lines - coupon) x returned value
  / lines)``, and a return refunds what its units add to that figure;
- plus the tax, the same way (``floor(tax x returned value / lines)``, cumulative);
- plus the order's shipping when the reason is the shop's fault, once per order;
- never more than was captured and not yet refunded (a staff refund counts too, and so
  does an earlier return's refund fixed at receipt and not made yet).

Rounding is explicit: minor units, floored on the *cumulative* share, so each return
loses at most one unit to rounding and the returns of a whole order add up to exactly
what was paid for its goods and tax.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OrderAmounts:
    """The order's figures, in minor units."""

    lines_total: int  # Σ line_total: the goods after automatic discounts, before the coupon
    coupon_discount: int
    shipping: int
    tax: int
    captured: int
    # already refunded, by earlier returns or by staff, and owed to earlier returns
    # received whose refund is not made yet
    refunded: int


@dataclass(frozen=True)
class RefundBreakdown:
    goods: int
    tax: int
    shipping: int
    amount: int  # what is refunded: the sum, capped at captured - refunded

    @property
    def capped(self) -> bool:
        return self.amount < self.goods + self.tax + self.shipping


def _share(total: int, value: int, whole: int) -> int:
    if whole <= 0 or total <= 0:
        return 0
    return total * min(value, whole) // whole


def return_refund(
    order: OrderAmounts,
    *,
    returned_value: int,
    earlier_value: int = 0,
    refund_shipping: bool = False,
) -> RefundBreakdown:
    """The refund for units worth ``returned_value`` (Σ unit_price x units received),
    after earlier returns of the same order worth ``earlier_value``."""
    if returned_value < 0 or earlier_value < 0:
        raise ValueError("returned values cannot be negative")
    whole = order.lines_total
    goods_total = max(whole - order.coupon_discount, 0)
    after = earlier_value + returned_value
    goods = _share(goods_total, after, whole) - _share(goods_total, earlier_value, whole)
    tax = _share(order.tax, after, whole) - _share(order.tax, earlier_value, whole)
    shipping = order.shipping if refund_shipping else 0
    left = max(order.captured - order.refunded, 0)
    return RefundBreakdown(
        goods=goods, tax=tax, shipping=shipping, amount=min(goods + tax + shipping, left)
    )
