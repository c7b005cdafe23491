"""What a return refunds, with figures worked out by hand (services/returns/refunds.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.settings import RETURN_REASONS, Settings
from models.returns import ReturnReason
from services.returns import OrderAmounts, return_refund

# Mug 2 x 20.00 (after its automatic discount) + Tea 1 x 10.00: lines 50.00; coupon
# 5.00 -> goods 45.00; tax 8% of 45.00 = 3.60; shipping 5.99; paid 54.59.
ORDER = OrderAmounts(
    lines_total=5000, coupon_discount=500, shipping=599, tax=360, captured=5459, refunded=0
)


def test_one_mug_of_a_shop_fault_return_refunds_its_share_and_the_shipping() -> None:
    # goods 45.00 x 20/50 = 18.00; tax 3.60 x 20/50 = 1.44; shipping 5.99.
    refund = return_refund(ORDER, returned_value=2000, refund_shipping=True)
    assert (refund.goods, refund.tax, refund.shipping) == (1800, 144, 599)
    assert refund.amount == 2543
    assert not refund.capped


def test_returns_of_the_whole_order_add_up_to_exactly_what_was_paid() -> None:
    first = return_refund(ORDER, returned_value=2000, refund_shipping=True)
    # The rest (mug + tea, 30.00 of lines) after it: goods 45.00 - 18.00, tax 3.60 - 1.44.
    rest = return_refund(
        replace(ORDER, refunded=first.amount),
        returned_value=3000,
        earlier_value=2000,
    )
    assert (rest.goods, rest.tax, rest.shipping) == (2700, 216, 0)
    assert first.amount + rest.amount == ORDER.captured


def test_rounding_is_floored_on_the_cumulative_share() -> None:
    # Three lines of 10.00, coupon 1.00: goods 29.00 -> 9.66 (9.666 floored), then
    # 19.33 - 9.66 = 9.67, then 29.00 - 19.33 = 9.67. No tax, no shipping.
    order = OrderAmounts(
        lines_total=3000, coupon_discount=100, shipping=0, tax=0, captured=2900, refunded=0
    )
    amounts = [
        return_refund(order, returned_value=1000, earlier_value=before).amount
        for before in (0, 1000, 2000)
    ]
    assert amounts == [966, 967, 967]
    assert sum(amounts) == 2900


def test_never_more_than_captured_less_refunded() -> None:
    # A staff refund of 30.00 earlier leaves 24.59: the 25.43 due is capped.
    after_staff = replace(ORDER, refunded=3000)
    refund = return_refund(after_staff, returned_value=2000, refund_shipping=True)
    assert refund.amount == 2459
    assert refund.capped
    nothing_left = replace(ORDER, refunded=5459)
    assert return_refund(nothing_left, returned_value=1000).amount == 0


def test_automatic_discounts_are_not_counted_twice() -> None:
    # A 25.00 product at 20.00 after its automatic discount: the line's unit_price (20.00)
    # is the returned value; lines_total already excludes the automatic discount, so no
    # coupon means the whole 20.00 (and its tax share) comes back.
    order = OrderAmounts(
        lines_total=2000, coupon_discount=0, shipping=0, tax=125, captured=2125, refunded=0
    )
    refund = return_refund(order, returned_value=2000)
    assert (refund.goods, refund.tax, refund.amount) == (2000, 125, 2125)


def test_a_free_order_refunds_nothing_and_negative_values_are_refused() -> None:
    free = OrderAmounts(lines_total=0, coupon_discount=0, shipping=0, tax=0, captured=0, refunded=0)
    assert return_refund(free, returned_value=0).amount == 0
    with pytest.raises(ValueError, match="cannot be negative"):
        return_refund(ORDER, returned_value=-1)


def test_auto_approve_reasons_are_validated_and_match_the_enum() -> None:
    assert set(RETURN_REASONS) == {str(r) for r in ReturnReason}
    settings = Settings(return_auto_approve_reasons=" damaged, wrong_item ,")
    assert settings.auto_approve_reasons == {"damaged", "wrong_item"}
    with pytest.raises(ValueError, match="unknown return reason"):
        Settings(return_auto_approve_reasons="damaged,broken")
