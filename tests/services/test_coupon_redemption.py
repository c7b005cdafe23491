"""create-order records the use of the coupon the order was priced with: its limits are
checked now, under the coupon's lock; its validity window as of the pricing, since the
total authorised on the card already carries the coupon's discount."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ShopError
from core.settings import Settings
from models.base import utcnow
from models.orders import Order, OrderStatus
from models.pricing import Coupon, CouponRedemption, DiscountKind
from services.analytics import AnalyticsRecorder
from services.catalog.coupons import CouponRepository
from services.orders import OrderService
from tests.fulfillment.factories import queued_order


async def _priced_with_coupon(
    session: AsyncSession, coupon: Coupon, priced_minutes_ago: int
) -> Order:
    """An order priced with ``coupon`` some minutes ago, its payment authorised since
    (3-D Secure can take up to 15 minutes)."""
    session.add(coupon)
    order, _ = await queued_order(session, (1,))
    order.status = OrderStatus.PAYMENT_AUTHORIZED
    order.coupon_code = coupon.code
    order.subtotal, order.coupon_discount, order.total = 5000, 500, 4500
    order.priced_at = utcnow() - timedelta(minutes=priced_minutes_ago)
    await session.flush()
    return order


def _coupon(**fields: object) -> Coupon:
    return Coupon.model_validate(
        {
            "code": f"TEN-{uuid4().hex[:8]}".upper(),
            "kind": DiscountKind.PERCENTAGE,
            "percent_bp": 1000,
            "currency": "USD",
        }
        | fields
    )


async def test_a_coupon_that_expired_after_the_order_was_priced_is_still_redeemed(
    db_session: AsyncSession, settings: Settings
) -> None:
    """Priced at 23:50 with a coupon valid until midnight, authorised after a 3-D Secure
    wait at 00:02: the order goes through at the price it was authorised for. Judged at
    create-order's own time the coupon had expired, and the order failed after the
    customer had authenticated the payment."""
    coupon = _coupon(expires_at=utcnow() - timedelta(minutes=2))
    order = await _priced_with_coupon(db_session, coupon, priced_minutes_ago=12)
    orders = OrderService(db_session, settings, AnalyticsRecorder(enabled=False))
    await orders.confirm(order.id)
    redemption = await CouponRepository(db_session).redemption_for_order(order.id)
    assert isinstance(redemption, CouponRedemption)
    assert redemption.amount == order.coupon_discount
    assert order.status == OrderStatus.CONFIRMED


async def test_a_coupon_used_up_since_the_order_was_priced_fails_create_order(
    db_session: AsyncSession, settings: Settings
) -> None:
    """Its limits are the coupon's state now: the last use went to another order."""
    coupon = _coupon(usage_limit=1, used_count=1)
    order = await _priced_with_coupon(db_session, coupon, priced_minutes_ago=1)
    orders = OrderService(db_session, settings, AnalyticsRecorder(enabled=False))
    with pytest.raises(ShopError) as refused:
        await orders.confirm(order.id)
    assert refused.value.extra.get("reason") == "coupon_exhausted"
