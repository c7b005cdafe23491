"""Orders: the read model and every change the order workflow's steps make to it (each
a move of ``OrderTransitions``, ``services/order_transitions.py``, with what the step
writes beside it).

Each step's change is one transaction: the order row, an ``order_events`` row, and
where it applies the outbox event and analytics event with it. Every method is safe to
repeat (activities retry): a transition to the status an order already has is a no-op.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from models.base import utcnow
from models.carts import CartStatus
from models.inventory import ReservationLine
from models.order_api import OrderEventPublic, OrderLinePublic, OrderPublic, OrderSummary
from models.orders import (
    PAYMENT_FAILURES,
    LineSnapshot,
    Order,
    OrderSnapshot,
    OrderStatus,
    TimelineAudience,
)
from services.analytics import AnalyticsRecorder
from services.cart_repository import CartRepository
from services.carts import CartService
from services.catalog.coupons import CouponService
from services.customers import LifetimeValueService
from services.fulfillment.reading import FulfillmentReader
from services.fulfillment_priority import FulfillmentPriority, ShippingMethod, calculate_priority
from services.order_checks import refuse_unchargeable
from services.order_rendering import render_order
from services.order_repository import OrderFilter
from services.order_snapshots import line_snapshot, order_snapshot
from services.order_transitions import OrderTransitions

# The first timeline entry of every order (``Checkout.place``).
PLACED_MESSAGE = "order placed"


class OrderService(OrderTransitions):
    def __init__(self, session: AsyncSession, settings: Settings, analytics: AnalyticsRecorder):
        super().__init__(session)
        self.settings = settings
        self.analytics = analytics
        self.carts = CartRepository(session)

    # --- the workflow's steps ---------------------------------------------------------

    async def price(self, order_id: str) -> OrderSnapshot:
        """validate-order: quote the cart for the order's address and keep that quote on
        the order (its lines and totals), once; a repeat returns the same snapshot."""
        order = await self.orders.require(order_id, lock=True)
        if order.priced_at is not None:
            lines = await self.orders.lines(order.id)
            return order_snapshot(
                order, [LineSnapshot.model_validate(ln, from_attributes=True) for ln in lines]
            )
        cart = await self.carts.get(order.cart_id, lock=True)
        if cart is None or cart.status != CartStatus.ACTIVE:
            raise Conflict("the cart was checked out or closed", code="cart_not_active")
        carts = CartService(self.session, self.settings, self.analytics)
        priced = await carts.quote(cart, order.address.destination)
        refuse_unchargeable(priced, order.expected_total)
        await self.orders.add_lines(order.id, priced.lines)
        order.currency = priced.currency
        order.subtotal = priced.subtotal
        order.automatic_discounts = priced.automatic_discounts
        order.coupon_code = priced.coupon.code if priced.coupon is not None else None
        order.coupon_discount = priced.coupon_discount
        order.shipping = priced.shipping
        order.tax = priced.tax
        order.total = priced.total
        order.priced_at = utcnow()
        self.orders.stage(order)
        await self.note(
            order,
            "order priced",
            {"total": order.total, "lines": len(priced.lines)},
            audience=TimelineAudience.CUSTOMER,
        )
        await self.analytics.track(
            self.session,
            "checkout_start",
            user_id=order.user_id,
            session_id=order.cart_id,
            properties={
                "orderId": order.id,
                "total": order.total,
                "itemCount": sum(line.quantity for line in priced.lines),
            },
        )
        return order_snapshot(order, [line_snapshot(line) for line in priced.lines])

    async def reservation_lines(self, order_id: str) -> list[ReservationLine]:
        return [
            ReservationLine(product_id=ln.product_id, quantity=ln.quantity)
            for ln in await self.orders.lines(order_id)
        ]

    async def confirm(self, order_id: str) -> str:
        """create-order: record coupon usage, close the cart, publish ``order.created``.
        Returns the (now checked-out) cart's id."""
        order = await self.forward(order_id)
        if not self.can_move(order, OrderStatus.CONFIRMED):
            return order.cart_id  # confirmed before, or undone meanwhile: nothing to do
        if order.coupon_code:
            await CouponService(self.session).redeem(
                order.coupon_code,
                user_id=order.user_id,
                order_id=order.id,
                subtotal=order.subtotal - order.automatic_discounts,
                currency=order.currency,
                priced_at=order.priced_at,
            )
        cart = await self.carts.get(order.cart_id, lock=True)
        if cart is not None and cart.status == CartStatus.ACTIVE:
            cart.status = CartStatus.CHECKED_OUT
            cart.updated_at = utcnow()
            self.carts.stage(cart)
        await self.transition(order, OrderStatus.CONFIRMED, "order confirmed")
        if order.total == 0:
            # The workflow skips the payment steps of a free order (Stripe refuses 0).
            await self.note(
                order, "nothing to charge: the total is 0", audience=TimelineAudience.CUSTOMER
            )
        lines = await self.orders.lines(order.id)
        await publish(
            self.session,
            EventType.ORDER_CREATED,
            order.id,
            {
                "orderId": order.id,
                "userId": order.user_id,
                "total": order.total,
                "currency": order.currency,
                "items": [
                    {
                        "productId": ln.product_id,
                        "quantity": ln.quantity,
                        "unitPrice": ln.unit_price,
                    }
                    for ln in lines
                ],
            },
        )
        return order.cart_id

    async def queue_fulfillment(self, order_id: str) -> None:
        """queue-fulfillment: hand the order to the warehouse (``fulfillment.order_ready``)."""
        order = await self.forward(order_id)
        if not await self.transition(
            order, OrderStatus.FULFILLMENT_QUEUED, "queued for fulfilment"
        ):
            return
        lines = await self.orders.lines(order.id)
        priority = await self._priority(order)
        await publish(
            self.session,
            EventType.FULFILLMENT_ORDER_READY,
            order.id,
            {
                "orderId": order.id,
                "shippingAddress": order.shipping_address,
                "items": [
                    {"productId": ln.product_id, "sku": ln.sku, "quantity": ln.quantity}
                    for ln in lines
                ],
                "priority": priority.score,
                "priorityLevel": priority.level,
            },
        )
        await self.analytics.track(
            self.session,
            "order_complete",
            user_id=order.user_id,
            session_id=order.cart_id,
            # The seed's createOrder tracks these three (as ``order_created``): see the
            # README's *Analytics* for why the shop records them on ``order_complete``.
            properties={
                "orderId": order.id,
                "total": order.total,
                "currency": order.currency,
                "itemCount": sum(ln.quantity for ln in lines),
            },
        )

    async def _priority(self, order: Order) -> FulfillmentPriority:
        """The seed's ``calculatePriority(order)``. Every order ships standard (there is
        no other shipping method yet); the lifetime value is what the customer's other
        orders count in this order's currency (``services/customers.py``), so it does not
        depend on whether this order's ``order.created`` was handled yet."""
        timeline = await self.orders.events(order.id, TimelineAudience.CUSTOMER)  # statuses
        confirmed = next(
            (e.created_at for e in timeline if e.status == OrderStatus.CONFIRMED),
            order.created_at,
        )
        return calculate_priority(
            ShippingMethod.STANDARD,
            total=order.total,
            lifetime_value=await LifetimeValueService(self.session).value_before(
                order.user_id, order.id, order.currency
            ),
            waited=utcnow() - confirmed,
        )

    async def undo_confirm(self, order_id: str) -> bool:
        """create-order's compensation: give the coupon use back and reopen the cart (if
        its owner has not started another one meanwhile). Idempotent."""
        order = await self.undo_started(order_id)
        released = await CouponService(self.session).release(order_id)
        if released:
            await self.note(order, "coupon use given back", audience=TimelineAudience.CUSTOMER)
        cart = await self.carts.get(order.cart_id, lock=True)
        reopened = False
        if cart is not None and cart.status == CartStatus.CHECKED_OUT:
            other = await self.carts.active_for_user(order.user_id)
            if other is None:
                cart.status = CartStatus.ACTIVE
                cart.updated_at = utcnow()
                self.carts.stage(cart)
                await self.note(order, "cart reopened", audience=TimelineAudience.CUSTOMER)
                reopened = True
        return released or reopened

    async def close(
        self,
        order_id: str,
        status: OrderStatus,
        failure_code: str | None,
        detail: str | None,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Mark the order failed or cancelled and publish why; idempotent."""
        order = await self.orders.require(order_id, lock=True)
        if not self.can_move(order, status):
            return False
        message = "order cancelled" if status is OrderStatus.CANCELLED else "order failed"
        if status is OrderStatus.CANCELLED and await CouponService(self.session).release(order_id):
            # Cancelled through its fulfilment (once queued): OrderWorkflow's undo of
            # create-order, which gives the use back, is behind it.
            await self.note(order, "coupon use given back", audience=TimelineAudience.CUSTOMER)
        # Captured money the undo did not refund (its refund failed at Stripe: staff are
        # alerted by payment.refund_failed): the customer must not read "refunded".
        payment = await self.orders.payment(order.id)
        left = payment.amount_captured - payment.amount_refunded if payment else 0
        data = (data or {}) | ({"unrefunded": left} if left > 0 else {})
        await self.transition(
            order,
            status,
            message,
            data={"failureCode": failure_code} | data,
            failure_code=failure_code,
            failure_detail=detail,
        )
        payload = {
            "orderId": order.id,
            "userId": order.user_id,
            "failureCode": failure_code,
            "reason": detail,
            "total": order.total,
            "currency": order.currency,
        } | data
        if status is OrderStatus.CANCELLED:
            await publish(self.session, EventType.ORDER_CANCELLED, order.id, payload)
        elif failure_code in PAYMENT_FAILURES:
            await publish(self.session, EventType.PAYMENT_FAILED, order.id, payload)
        else:
            await publish(self.session, EventType.ORDER_FAILED, order.id, payload)
        return True

    # --- reading ----------------------------------------------------------------------

    async def public(self, order: Order, reader: TimelineAudience) -> OrderPublic:
        """The order as ``reader`` sees it: a customer without the staff-only timeline
        entries (so its ETag does not change with one), staff with every entry."""
        return render_order(
            order,
            lines=[OrderLinePublic.of(ln) for ln in await self.orders.lines(order.id)],
            timeline=[
                OrderEventPublic.model_validate(e, from_attributes=True)
                for e in await self.orders.events(order.id, reader)
            ],
            payment=await self.orders.payment(order.id),
            shipments=await FulfillmentReader(self.session).order_shipments(order.id),
        )

    def placed(self, order: Order) -> OrderPublic:
        """``public`` of an order ``Checkout.place`` has just written, from what it wrote:
        no lines, payment or parcels yet, its one timeline entry at its creation (POST
        /api/orders read all four back, issue #15). The same body, so the same ETag, as a
        read of it would give."""
        return render_order(
            order,
            lines=[],
            timeline=[
                OrderEventPublic(
                    status=OrderStatus.PENDING,
                    message=PLACED_MESSAGE,
                    data={},
                    audience=TimelineAudience.CUSTOMER,
                    created_at=order.created_at,
                )
            ],
            payment=None,
            shipments=[],
        )

    async def summaries(
        self, where: OrderFilter, *, offset: int, limit: int
    ) -> tuple[list[OrderSummary], int]:
        rows, total = await self.orders.search(where, offset=offset, limit=limit)
        return [
            OrderSummary(
                id=o.id,
                user_id=o.user_id,
                status=o.status,
                failure_code=o.failure_code,
                currency=o.currency,
                total=o.total if o.priced_at is not None else None,
                item_count=items,
                created_at=o.created_at,
                updated_at=o.updated_at,
            )
            for o, items in rows
        ], total
