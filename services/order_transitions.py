"""An order's moves: forward only, never back to an earlier status, fenced once its
compensations began (``OrderUndone``), each with its timeline entry. ``OrderService``
(``services/orders.py``) makes the workflow's steps of them.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from models.base import utcnow
from models.orders import Order, OrderStatus, TimelineAudience
from services.order_repository import ChargeTerms, OrderRepository

_PROGRESS = {
    OrderStatus.PENDING: 0,
    OrderStatus.RESERVED: 1,
    OrderStatus.REQUIRES_ACTION: 2,
    OrderStatus.PAYMENT_AUTHORIZED: 3,
    OrderStatus.CONFIRMED: 4,
    OrderStatus.FULFILLMENT_QUEUED: 5,
    OrderStatus.PARTIALLY_SHIPPED: 6,
    OrderStatus.SHIPPED: 7,
    OrderStatus.DELIVERED: 8,
}


class OrderUndone(Conflict):
    code = "order_undone"
    title = "The order is being undone; this step no longer applies"


class OrderTransitions:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.orders = OrderRepository(session)

    @staticmethod
    def can_move(order: Order, status: OrderStatus) -> bool:
        """Orders only move forward. A failed or cancelled order never reopens, an order
        handed to fulfilment never fails, and a late answer (a timed-out activity attempt
        that finished after all) never takes an order back to an earlier status."""
        current = OrderStatus(order.status)
        if current == status or current in (OrderStatus.FAILED, OrderStatus.CANCELLED):
            return False
        if status is OrderStatus.FAILED:
            return _PROGRESS[current] < _PROGRESS[OrderStatus.FULFILLMENT_QUEUED]
        if status is OrderStatus.CANCELLED:
            # A fulfilment cancelled before any label cancels its order (fulfillment_queued);
            # once a parcel has shipped it never does.
            return _PROGRESS[current] <= _PROGRESS[OrderStatus.FULFILLMENT_QUEUED]
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
        return await self.move(
            self.orders, order, status, message, data, failure_code, failure_detail
        )

    @classmethod
    async def move(
        cls,
        orders: OrderRepository,
        order: Order,
        status: OrderStatus,
        message: str,
        data: dict[str, Any] | None = None,
        failure_code: str | None = None,
        failure_detail: str | None = None,
    ) -> bool:
        """``transition`` for callers that hold only the repository (fulfilment)."""
        if not cls.can_move(order, status):
            return False
        # The row and its timeline entry in one statement, not an ORM flush and an insert:
        # every step of every order moves it (issue #15, the worker's CPU per order).
        await orders.move(
            order,
            {
                "status": status,
                "failure_code": failure_code,
                "failure_detail": failure_detail,
                # requires_action keeps the URL its caller set on the order
                "next_action_url": order.next_action_url
                if status is OrderStatus.REQUIRES_ACTION
                else None,
                "updated_at": utcnow(),
            },
            message,
            data or {},
        )
        return True

    async def undo_started(self, order_id: str) -> Order:
        """Every compensation starts here: the order (locked) is marked as being undone,
        so that a late attempt of a forward step does nothing (see ``forward``)."""
        order = await self.orders.require(order_id, lock=True)
        if order.undoing_at is None:
            order.undoing_at = utcnow()
            await self.orders.save(order)
        return order

    async def forward(self, order_id: str) -> Order:
        """A forward step's order (locked); ``OrderUndone`` once compensations began."""
        order = await self.orders.require(order_id, lock=True)
        if order.undoing_at is not None:
            raise OrderUndone(f"order {order_id} is being undone")
        return order

    async def fence(self, order_id: str) -> None:
        """``forward`` for a step that needs nothing of the order but the fence: the row
        is locked and checked without loading the order."""
        if await self.orders.undoing_since(order_id) is not None:
            raise OrderUndone(f"order {order_id} is being undone")

    async def charge_terms(self, order_id: str) -> ChargeTerms:
        """``forward`` for authorising the order's payment: the row locked and fenced, and
        what a charge reads of it (its total, currency and card), without loading the
        order."""
        terms = await self.orders.charge_terms(order_id)
        if terms.undoing_at is not None:
            raise OrderUndone(f"order {order_id} is being undone")
        return terms

    async def note(
        self,
        order: Order,
        message: str,
        data: dict[str, Any] | None = None,
        *,
        audience: TimelineAudience,
        key: str | None = None,
    ) -> None:
        """A timeline entry without a status change (e.g. a compensation that ran), for
        ``audience``; with ``key``, once per order (``OrderRepository.add_event``)."""
        await self.orders.add_event(
            order.id, order.status, message, data or {}, audience=audience, key=key
        )
