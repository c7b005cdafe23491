"""Orders: the read model and every change the order workflow's steps make to it.

Each step's change is one transaction: the order row, an ``order_events`` row, and
where it applies the outbox event and analytics event with it. Every method is safe to
repeat (activities retry): a transition to the status an order already has is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound, ValidationFailed
from core.outbox import publish
from core.settings import Settings
from models.base import utcnow
from models.carts import Cart, CartStatus
from models.catalog import Product
from models.inventory import ReservationLine
from models.orders import (
    LineSnapshot,
    Order,
    OrderEvent,
    OrderEventPublic,
    OrderLine,
    OrderLinePublic,
    OrderPublic,
    OrderSnapshot,
    OrderStatus,
    OrderSummary,
    OrderTotals,
    Payment,
    PaymentSummary,
)
from models.users import User
from services.analytics import AnalyticsRecorder
from services.carts import CartRepository, CartService, OwnedCart
from services.catalog.pricing import CouponService

PAYMENT_FAILURES = frozenset(
    {
        "payment_declined",
        "payment_action_timeout",
        "invalid_payment_method",
        "payment_unavailable",
        "payment_error",
    }
)


_PROGRESS = {
    OrderStatus.PENDING: 0, OrderStatus.RESERVED: 1, OrderStatus.REQUIRES_ACTION: 2,
    OrderStatus.PAYMENT_AUTHORIZED: 3, OrderStatus.CONFIRMED: 4,
    OrderStatus.FULFILLMENT_QUEUED: 5,
}  # fmt: skip


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "No such order"


class CartEmpty(ValidationFailed):
    code = "cart_empty"
    title = "The cart is empty"


class OrderUndone(Conflict):
    code = "order_undone"
    title = "The order is being undone; this step no longer applies"


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    title = "The order can no longer be cancelled"


@dataclass(frozen=True)
class OrderFilter:
    user_id: str | None = None
    status: OrderStatus | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, order_id: str, *, lock: bool = False) -> Order | None:
        query = select(Order).where(Order.id == order_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def require(self, order_id: str, *, lock: bool = False) -> Order:
        order = await self.get(order_id, lock=lock)
        if order is None:
            raise OrderNotFound(f"no order {order_id}")
        return order

    async def live_for_cart(self, cart_id: str) -> Order | None:
        result = await self.session.exec(
            select(Order).where(
                Order.cart_id == cart_id,
                col(Order.status).not_in([OrderStatus.FAILED, OrderStatus.CANCELLED]),
            )
        )
        return result.first()

    async def lines(self, order_id: str) -> list[OrderLine]:
        result = await self.session.exec(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(col(OrderLine.id))
        )
        return list(result.all())

    async def events(self, order_id: str) -> list[OrderEvent]:
        result = await self.session.exec(
            select(OrderEvent)
            .where(OrderEvent.order_id == order_id)
            .order_by(col(OrderEvent.created_at), col(OrderEvent.id))
        )
        return list(result.all())

    async def payment(self, order_id: str) -> Payment | None:
        result = await self.session.exec(select(Payment).where(Payment.order_id == order_id))
        return result.first()

    async def search(
        self, where: OrderFilter, *, offset: int, limit: int
    ) -> tuple[list[tuple[Order, int]], int]:
        conditions = []
        if where.user_id is not None:
            conditions.append(col(Order.user_id) == where.user_id)
        if where.status is not None:
            conditions.append(col(Order.status) == where.status)
        if where.created_from is not None:
            conditions.append(col(Order.created_at) >= where.created_from)
        if where.created_to is not None:
            conditions.append(col(Order.created_at) < where.created_to)
        counts = (
            select(OrderLine.order_id, func.sum(OrderLine.quantity).label("item_count"))
            .group_by(col(OrderLine.order_id))
            .subquery()
        )
        rows = await self.session.exec(
            select(Order, func.coalesce(counts.c.item_count, 0))
            .outerjoin(counts, counts.c.order_id == col(Order.id))
            .where(*conditions)
            .order_by(col(Order.created_at).desc(), col(Order.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(select(func.count()).select_from(Order).where(*conditions))
        return [(o, int(n)) for o, n in rows.all()], int(total.one())


class OrderService:
    def __init__(self, session: AsyncSession, settings: Settings, analytics: AnalyticsRecorder):
        self.session = session
        self.settings = settings
        self.analytics = analytics
        self.orders = OrderRepository(session)

    # --- transitions ------------------------------------------------------------------

    @staticmethod
    def can_move(order: Order, status: OrderStatus) -> bool:
        """Orders only move forward. A failed or cancelled order never reopens, an order
        handed to fulfilment never fails, and a late answer (a timed-out activity attempt
        that finished after all) never takes an order back to an earlier status."""
        current = OrderStatus(order.status)
        if current == status or current in (OrderStatus.FAILED, OrderStatus.CANCELLED):
            return False
        if status in (OrderStatus.FAILED, OrderStatus.CANCELLED):
            return current != OrderStatus.FULFILLMENT_QUEUED
        return _PROGRESS[status] > _PROGRESS[current]

    async def transition(
        self,
        order: Order,
        status: OrderStatus,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        failure_code: str | None = None,
        failure_detail: str | None = None,
    ) -> bool:
        """Move ``order`` to ``status`` with a timeline entry; False (and no change) if
        it already is there or the move would go backwards."""
        if not self.can_move(order, status):
            return False
        order.status = status
        order.failure_code = failure_code
        order.failure_detail = failure_detail
        if status is not OrderStatus.REQUIRES_ACTION:
            order.next_action_url = None
        order.updated_at = utcnow()
        self.session.add(order)
        self.session.add(
            OrderEvent(order_id=order.id, status=status, message=message, data=data or {})
        )
        await self.session.flush()
        return True

    async def undo_started(self, order_id: str) -> Order:
        """Every compensation starts here: the order (locked) is marked as being undone,
        so that a late attempt of a forward step does nothing (see ``forward``)."""
        order = await self.orders.require(order_id, lock=True)
        if order.undoing_at is None:
            order.undoing_at = utcnow()
            self.session.add(order)
            await self.session.flush()
        return order

    async def forward(self, order_id: str) -> Order:
        """A forward step's order (locked); ``OrderUndone`` once compensations began."""
        order = await self.orders.require(order_id, lock=True)
        if order.undoing_at is not None:
            raise OrderUndone(f"order {order_id} is being undone")
        return order

    async def note(self, order: Order, message: str, data: dict[str, Any] | None = None) -> None:
        """A timeline entry without a status change (e.g. a compensation that ran)."""
        self.session.add(
            OrderEvent(order_id=order.id, status=order.status, message=message, data=data or {})
        )
        await self.session.flush()

    # --- the workflow's steps ---------------------------------------------------------

    async def price(self, order_id: str) -> OrderSnapshot:
        """validate-order: price the cart now and keep a snapshot of each line (once)."""
        order = await self.orders.require(order_id, lock=True)
        user = await self.session.get(User, order.user_id)
        name = user.name if user is not None else ""
        if order.priced_at is None:
            cart = await self.session.get(Cart, order.cart_id, with_for_update=True)
            if cart is None or cart.status != CartStatus.ACTIVE:
                raise Conflict("the cart was checked out or closed", code="cart_not_active")
            address = order.shipping_address
            view = await CartService(self.session, self.settings, self.analytics).view(
                OwnedCart(cart, None), country=address.get("country"), state=address.get("state")
            )
            if not view.items:
                raise CartEmpty("there is nothing in the cart to order")
            if view.coupon_code and view.coupon_problem:
                raise ValidationFailed(
                    f"the coupon no longer applies: {view.coupon_problem}",
                    code="coupon_not_applicable",
                )
            products = {
                p.id: p
                for p in (
                    await self.session.exec(
                        select(Product).where(
                            col(Product.id).in_([i.product_id for i in view.items])
                        )
                    )
                ).all()
            }
            for item in view.items:
                self.session.add(
                    OrderLine(
                        order_id=order.id,
                        product_id=item.product_id,
                        name=item.name,
                        sku=products[item.product_id].sku,
                        quantity=item.quantity,
                        list_price=products[item.product_id].price,
                        unit_price=item.unit_price,
                        line_total=item.line_total,
                    )
                )
            totals = view.totals
            order.currency = view.currency
            order.subtotal = totals.subtotal
            order.automatic_discounts = totals.automatic_discounts
            order.coupon_code = view.coupon_code
            order.coupon_discount = totals.coupon_discount
            order.shipping = totals.shipping
            order.tax = totals.tax
            order.total = totals.total
            order.priced_at = utcnow()
            self.session.add(order)
            await self.note(order, "order priced", {"total": order.total, "lines": len(view.items)})
            await self.analytics.track(
                self.session,
                "checkout_start",
                user_id=order.user_id,
                session_id=order.cart_id,
                properties={
                    "orderId": order.id,
                    "total": order.total,
                    "itemCount": sum(i.quantity for i in view.items),
                },
            )
        lines = await self.orders.lines(order.id)
        return OrderSnapshot(
            order_id=order.id,
            user_id=order.user_id,
            email=order.email,
            name=name,
            currency=order.currency,
            total=order.total,
            lines=[LineSnapshot.model_validate(ln, from_attributes=True) for ln in lines],
        )

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
            )
        cart = await self.session.get(Cart, order.cart_id, with_for_update=True)
        if cart is not None and cart.status == CartStatus.ACTIVE:
            cart.status = CartStatus.CHECKED_OUT
            cart.updated_at = utcnow()
            self.session.add(cart)
        await self.transition(order, OrderStatus.CONFIRMED, "order confirmed")
        lines = await self.orders.lines(order.id)
        await publish(
            self.session,
            "order.created",
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
        await publish(
            self.session,
            "fulfillment.order_ready",
            order.id,
            {
                "orderId": order.id,
                "shippingAddress": order.shipping_address,
                "items": [
                    {"productId": ln.product_id, "sku": ln.sku, "quantity": ln.quantity}
                    for ln in lines
                ],
            },
        )
        await self.analytics.track(
            self.session,
            "order_complete",
            user_id=order.user_id,
            session_id=order.cart_id,
            properties={"orderId": order.id, "total": order.total, "currency": order.currency},
        )

    async def undo_confirm(self, order_id: str) -> bool:
        """create-order's compensation: give the coupon use back and reopen the cart (if
        its owner has not started another one meanwhile). Idempotent."""
        order = await self.undo_started(order_id)
        released = await CouponService(self.session).release(order_id)
        if released:
            await self.note(order, "coupon use given back")
        cart = await self.session.get(Cart, order.cart_id, with_for_update=True)
        reopened = False
        if cart is not None and cart.status == CartStatus.CHECKED_OUT:
            other = await CartRepository(self.session).active_for_user(order.user_id)
            if other is None:
                cart.status = CartStatus.ACTIVE
                cart.updated_at = utcnow()
                self.session.add(cart)
                await self.note(order, "cart reopened")
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
        await self.transition(
            order,
            status,
            message,
            data={"failureCode": failure_code} | (data or {}),
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
        } | (data or {})
        if status is OrderStatus.CANCELLED:
            await publish(self.session, "order.cancelled", order.id, payload)
        elif failure_code in PAYMENT_FAILURES:
            await publish(self.session, "payment.failed", order.id, payload)
        else:
            await publish(self.session, "order.failed", order.id, payload)
        return True

    # --- reading ----------------------------------------------------------------------

    async def public(self, order: Order) -> OrderPublic:
        lines = await self.orders.lines(order.id)
        events = await self.orders.events(order.id)
        payment = await self.orders.payment(order.id)
        return OrderPublic(
            id=order.id,
            user_id=order.user_id,
            cart_id=order.cart_id,
            status=order.status,
            failure_code=order.failure_code,
            failure_detail=order.failure_detail,
            next_action_url=order.next_action_url,
            currency=order.currency,
            coupon_code=order.coupon_code,
            items=[OrderLinePublic.model_validate(ln, from_attributes=True) for ln in lines],
            totals=OrderTotals(
                subtotal=order.subtotal,
                automatic_discounts=order.automatic_discounts,
                coupon_discount=order.coupon_discount,
                shipping=order.shipping,
                tax=order.tax,
                total=order.total,
            ),
            shipping_address=order.shipping_address,
            payment_method={"type": order.payment_method_type, "token": order.payment_token},
            payment=PaymentSummary.model_validate(payment, from_attributes=True)
            if payment is not None
            else None,
            timeline=[OrderEventPublic.model_validate(e, from_attributes=True) for e in events],
            created_at=order.created_at,
            updated_at=order.updated_at,
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
                total=o.total,
                item_count=items,
                created_at=o.created_at,
                updated_at=o.updated_at,
            )
            for o, items in rows
        ], total


class OrderPurchases:
    """``PurchaseHistory`` over orders: a review is verified when the reviewer bought it."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def has_confirmed_purchase(self, user_id: str, product_id: str) -> bool:
        result = await self.session.exec(
            select(OrderLine.id)
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(
                Order.user_id == user_id,
                OrderLine.product_id == product_id,
                col(Order.status).in_([OrderStatus.CONFIRMED, OrderStatus.FULFILLMENT_QUEUED]),
            )
            .limit(1)
        )
        return result.first() is not None
