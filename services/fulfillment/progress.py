"""Bring a fulfilment's status, and its order's, up to date with its parcels.

Called in the transaction of every change that can move them (a label bought, a carrier
update, a hold placed or released, a shipment created or cancelled): it locks the
fulfilment (then the order, always in that order), derives both statuses with
``services.fulfillment.status`` and writes what changed, with the order's timeline entry
and, when the last line is delivered, ``order.delivered``.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.fulfillment import Fulfillment, FulfillmentStatus, ShipmentStatus
from models.orders import OrderStatus
from services.fulfillment.repository import FulfillmentRepository
from services.fulfillment.status import (
    LineProgress,
    fulfillment_status,
    line_progress,
    order_status,
)
from services.order_repository import OrderRepository
from services.orders import OrderService

_ORDER_MESSAGES = {
    OrderStatus.PARTIALLY_SHIPPED: "part of the order has shipped",
    OrderStatus.SHIPPED: "every item has shipped",
    OrderStatus.DELIVERED: "every item has been delivered",
}


class FulfillmentProgress:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = FulfillmentRepository(session)
        self.orders = OrderRepository(session)

    async def lines(self, fulfillment: Fulfillment) -> list[LineProgress]:
        lines = await self.repo.lines(fulfillment.id)
        # As committed now: a parcel this session loaded before the fulfilment's lock may
        # have shipped since in another transaction (seen stale, two parcels shipping at
        # once each left the order partially shipped).
        shipments = await self.repo.shipments(fulfillment.id, fresh=True)
        parcels = await self.repo.shipment_lines([s.id for s in shipments])
        return line_progress(lines, shipments, parcels)

    async def refresh(self, fulfillment_id: str) -> Fulfillment:
        """Recompute and save; returns the (locked) fulfilment."""
        fulfillment = await self.repo.require(fulfillment_id, lock=True)
        shipments = await self.repo.shipments(fulfillment.id, fresh=True)
        progress = await self.lines(fulfillment)
        status = fulfillment_status(
            FulfillmentStatus(fulfillment.status),
            on_hold=fulfillment.hold_reason is not None,
            has_shipments=any(s.status != ShipmentStatus.CANCELLED for s in shipments),
            progress=progress,
        )
        if status != fulfillment.status:
            fulfillment.status = status
            fulfillment.updated_at = utcnow()
            self.repo.stage(fulfillment)
        target = order_status(progress)
        if target is not None:
            order = await self.orders.require(fulfillment.order_id, lock=True)
            data = {
                "lines": [
                    {
                        "orderLineId": p.order_line_id,
                        "quantity": p.quantity,
                        "shipped": p.shipped,
                        "delivered": p.delivered,
                    }
                    for p in progress
                ]
            }
            moved = await OrderService.move(
                self.orders, order, target, _ORDER_MESSAGES[target], data
            )
            if moved and target is OrderStatus.DELIVERED:
                await publish(
                    self.session,
                    EventType.ORDER_DELIVERED,
                    order.id,
                    {
                        "orderId": order.id,
                        "userId": order.user_id,
                        "email": order.email,
                        "fulfillmentId": fulfillment.id,
                        "deliveredAt": utcnow().isoformat(),
                    },
                )
        await self.session.flush()
        return fulfillment
