"""The order workflow's database steps (queue ``orders``): thin over ``services.orders``
and ``services.inventory``; each is one transaction and safe to repeat."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from core.db import SessionFactory, transaction
from core.settings import Settings
from models.inventory import MAX_STOCK
from models.orders import OrderSnapshot, OrderStatus, TimelineAudience
from services.analytics import AnalyticsRecorder
from services.inventory import ReservationService
from services.inventory.stock import not_put_back_note
from services.orders import OrderService
from temporal.clients.carts import CartReminderWorkflows
from temporal.errors import application_errors
from workflows.types.orders import CloseInput, ExtendInput, OrderRef, ReserveInput


class OrderActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        settings: Settings,
        analytics: AnalyticsRecorder,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._analytics = analytics

    def _orders(self, session: AsyncSession) -> OrderService:
        return OrderService(session, self._settings, self._analytics)

    @activity.defn(name="orders.validate")
    async def validate(self, input: OrderRef) -> OrderSnapshot:
        """validate-order: price the cart and snapshot its lines on the order."""
        with application_errors():
            async with transaction(self._sessions) as session:
                snap = await self._orders(session).price(input.order_id)
        return snap

    @activity.defn(name="orders.reserve_stock")
    async def reserve_stock(self, input: ReserveInput) -> None:
        """check-inventory: hold every line's stock for the order, all or nothing."""
        with application_errors():
            async with transaction(self._sessions) as session:
                orders = self._orders(session)
                # The order row lock first: a late attempt finds an undone order and
                # holds nothing for it.
                order = await orders.forward(input.order_id)
                lines = await orders.reservation_lines(input.order_id)
                await ReservationService(session).reserve(
                    input.order_id, lines, timedelta(seconds=input.ttl_seconds)
                )
                await orders.transition(order, OrderStatus.RESERVED, "stock reserved")

    @activity.defn(name="orders.extend_reservation")
    async def extend_reservation(self, input: ExtendInput) -> int:
        async with transaction(self._sessions) as session:
            return await ReservationService(session).extend(input.order_id, input.until)

    @activity.defn(name="orders.reserve_again")
    async def reserve_again(self, input: ReserveInput) -> int:
        """After 3-D Secure or a long authorise: the stock held again if the hold expired
        meanwhile (0 if it is still held); ``out_of_stock`` if it is gone."""
        with application_errors():
            async with transaction(self._sessions) as session:
                await self._orders(session).fence(input.order_id)
                return await ReservationService(session).reserve_again(
                    input.order_id, timedelta(seconds=input.ttl_seconds)
                )

    @activity.defn(name="orders.confirm")
    async def confirm(self, input: OrderRef) -> None:
        """create-order: confirm, record coupon usage, publish ``order.created``."""
        with application_errors():
            async with transaction(self._sessions) as session:
                cart_id = await self._orders(session).confirm(input.order_id)
                # The cart is checked out: a reminder whose start is still owed never
                # starts; a running one sees the cart checked out at its deadline (no
                # signal here: a workflow task per order).
                await CartReminderWorkflows.forget_owed_start(session, cart_id)

    @activity.defn(name="orders.commit_stock")
    async def commit_stock(self, input: OrderRef) -> int:
        """update-inventory: the held stock becomes a sale."""
        with application_errors():
            async with transaction(self._sessions) as session:
                await self._orders(session).fence(input.order_id)
                return await ReservationService(session).commit(input.order_id)

    @activity.defn(name="orders.queue_fulfillment")
    async def queue_fulfillment(self, input: OrderRef) -> None:
        async with transaction(self._sessions) as session:
            await self._orders(session).queue_fulfillment(input.order_id)

    # --- compensations: never raise business errors; retried until they succeed -------

    @activity.defn(name="orders.release_stock")
    async def release_stock(self, input: OrderRef) -> int:
        """Give back held stock, and return sold stock if the sale already went through."""
        async with transaction(self._sessions) as session:
            orders = self._orders(session)
            order = await orders.undo_started(input.order_id)
            inventory = ReservationService(session)
            count = await inventory.release(input.order_id)
            restock = await inventory.restock(input.order_id)
            count += restock.returned
            if count:
                await orders.note(
                    order, "stock released", {"products": count}, audience=TimelineAudience.STAFF
                )
            for product_id, quantity in restock.not_put_back.items():
                # Sold units the stock had no room for: said where staff read the order.
                await orders.note(
                    order,
                    f"stock of {product_id}: {not_put_back_note(quantity)}",
                    {"productId": product_id, "notPutBack": quantity, "limit": MAX_STOCK},
                    audience=TimelineAudience.STAFF,
                )
            return count

    @activity.defn(name="orders.undo_confirm")
    async def undo_confirm(self, input: OrderRef) -> bool:
        """Give the coupon use back and reopen the cart."""
        async with transaction(self._sessions) as session:
            return await self._orders(session).undo_confirm(input.order_id)

    @activity.defn(name="orders.close")
    async def close(self, input: CloseInput) -> bool:
        """Mark the order failed or cancelled and publish the matching event."""
        async with transaction(self._sessions) as session:
            await self._orders(session).undo_started(input.order_id)
            return await self._orders(session).close(
                input.order_id, input.status, input.failure_code, input.detail, input.data
            )
