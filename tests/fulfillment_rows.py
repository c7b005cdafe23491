"""Rows for after-sale tests: a customer's order handed to fulfilment, its fulfilment
order and the parcels staff made of it, written straight through the models (as
``FulfillmentWorkflow`` would have left them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from models.fulfillment import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
)
from models.orders import Order, OrderEvent, OrderLine
from models.outbox import OutboxEvent
from tests.fulfillment.factories import queued_order

ADDRESS = {
    "name": "Ada Lovelace",
    "street": "12 Harbour St",
    "city": "Boston",
    "state": "MA",
    "zip": "02110",
    "country": "US",
    "phone": None,
}


@dataclass
class OrderParcels:
    order: Order
    fulfillment: Fulfillment
    lines: list[OrderLine]
    shipments: list[Shipment] = field(default_factory=list)


async def order_in_parcels(
    session: AsyncSession,
    *,
    items: Sequence[tuple[str, int]] = (("Mug", 2), ("Tea", 1)),
    parcels: Sequence[Sequence[tuple[int, int]]] = (((0, 2), (1, 1)),),
    status: ShipmentStatus = ShipmentStatus.PENDING,
    email: str | None = None,
) -> OrderParcels:
    """An order of ``items`` (name, quantity), queued for fulfilment, with one shipment
    per entry of ``parcels`` ((item index, quantity), …), each in ``status``; a labelled
    one has a tracker id ``trk_{shipment id}``."""
    order, lines = await queued_order(
        session,
        tuple(qty for _, qty in items),
        names=tuple(name for name, _ in items),
        email=email,
    )
    order.shipping_address = ADDRESS
    fulfillment = Fulfillment(
        order_id=order.id,
        status=FulfillmentStatus.IN_PROGRESS,
        shipping_address=ADDRESS,
    )
    session.add(fulfillment)
    await session.flush()
    session.add_all(
        FulfillmentLine(
            fulfillment_id=fulfillment.id,
            order_line_id=ln.id,
            product_id=ln.product_id,
            name=ln.name,
            quantity=ln.quantity,
        )
        for ln in lines
    )
    made = OrderParcels(order=order, fulfillment=fulfillment, lines=lines)
    for contents in parcels:
        shipment = Shipment(
            fulfillment_id=fulfillment.id, order_id=order.id, status=ShipmentStatus.PENDING
        )
        if status is not ShipmentStatus.PENDING:
            shipment.status = status
            shipment.carrier, shipment.service = "USPS", "Priority"
            shipment.tracking_code = f"9400{shipment.id}"
            shipment.provider_shipment_id = f"shp_provider_{shipment.id}"
            shipment.provider_tracker_id = f"trk_{shipment.id}"
        session.add(shipment)
        await session.flush()
        session.add_all(
            ShipmentLine(
                shipment_id=shipment.id,
                order_line_id=lines[i].id,
                product_id=lines[i].product_id,
                quantity=qty,
            )
            for i, qty in contents
        )
        made.shipments.append(shipment)
    await session.flush()
    return made


async def timeline(session: AsyncSession, order_id: str) -> list[str]:
    rows = await session.exec(
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id)
        .order_by(col(OrderEvent.created_at), col(OrderEvent.id))
    )
    return [r.message for r in rows.all()]


async def published(session: AsyncSession, order_id: str, type: EventType) -> list[OutboxEvent]:
    rows = await session.exec(
        select(OutboxEvent)
        .where(OutboxEvent.aggregate_id == order_id, OutboxEvent.type == type)
        .order_by(col(OutboxEvent.seq))
    )
    return list(rows.all())
