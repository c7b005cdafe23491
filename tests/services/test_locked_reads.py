"""A row read under its lock is the row as committed, not as this session loaded it
earlier (``core.db.locked``): the decision taken under the lock is the one that counts.

Each test loads a row in one session, changes it in another that commits (the change
the lock waited for), then runs the step that locks it in the first session. Without
``populate_existing`` the lock re-read the row but the session kept its earlier copy."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from core.settings import Settings
from models.pricing import Coupon, CouponUpdate, DiscountKind
from services.analytics import AnalyticsRecorder
from services.catalog.coupons import CouponNotApplicable, CouponService
from services.order_transitions import OrderUndone
from services.orders import OrderService
from tests.events.customers import create_customer, create_order


async def test_a_forward_step_sees_the_undoing_begun_since_its_session_read_the_order(
    db_session: AsyncSession, db_sessions: SessionFactory, settings: Settings
) -> None:
    """A late attempt of a forward step must find the order being undone, as the
    compensation committed it (stale, it went on: stock or money held for an order whose
    compensations already ran)."""
    order = await create_order(db_session, await create_customer(db_session), total=4250)
    await db_session.commit()
    service = OrderService(db_session, settings, AnalyticsRecorder(False))
    assert (await service.orders.require(order.id)).undoing_at is None
    async with db_sessions() as other:
        await OrderService(other, settings, AnalyticsRecorder(False)).undo_started(order.id)
        await other.commit()
    with pytest.raises(OrderUndone):
        await service.forward(order.id)
    assert order.undoing_at is not None  # the session's copy, read again under the lock


async def test_a_redemption_sees_the_coupon_as_staff_changed_it_since_it_was_read(
    db_session: AsyncSession, db_sessions: SessionFactory
) -> None:
    """Redeeming re-checks the coupon under its row lock: a coupon switched off since this
    session read it (the cart's check) is not redeemed (stale, it was, while off)."""
    code = f"LOCK{uuid4().hex[:8].upper()}"
    # Held, as the session's identity map keeps only rows someone still refers to.
    coupon = Coupon(code=code, kind=DiscountKind.PERCENTAGE, percent_bp=1000, currency="USD")
    db_session.add(coupon)
    await db_session.commit()
    coupons = CouponService(db_session)
    assert (await coupons.check(code, 5000, "USD", None)).valid
    async with db_sessions() as other:
        await CouponService(other).update(code, CouponUpdate(active=False))
        await other.commit()
    with pytest.raises(CouponNotApplicable) as refused:
        await coupons.redeem(
            code,
            user_id="user_x",
            order_id=f"ord_{uuid4().hex[:20]}",
            subtotal=5000,
            currency="USD",
        )
    assert refused.value.extra["reason"] == "coupon_inactive"
    assert (coupon.active, coupon.used_count) == (False, 0)
