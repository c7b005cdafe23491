"""Delivered orders written as fulfilment writes them: a ``fulfillments`` row with its
lines, and shipments (with their lines) that the carrier delivered at a given time; returns
of them approved, and one placed through the live stack for the refund tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.settings import Settings
from models.base import utcnow
from models.fulfillment import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
)
from models.orders import Order, OrderLine, OrderStatus
from models.returns import (
    ReturnCreate,
    ReturnLine,
    ReturnLineCreate,
    ReturnReason,
    ReturnRequest,
    ReturnStatus,
)
from services.fulfillment.repository import FulfillmentRepository
from services.order_repository import OrderRepository
from services.returns import ReturnRepository, ReturnService
from tests.orders.helpers import Shopper, place, product, shopper_with_cart, wait_for

ADDRESS = {
    "street": "123 Main St",
    "city": "Boston",
    "state": "MA",
    "zip": "02101",
    "country": "US",
}


@dataclass(frozen=True)
class Parcel:
    """A shipment: {order line index: units}, delivered at ``delivered_at`` (None: still
    on its way)."""

    units: dict[int, int]
    delivered_at: datetime | None = None


async def write_order(
    engine: AsyncEngine,
    user_id: str,
    *,
    lines: list[tuple[str, int, int]],
    coupon_discount: int = 0,
    shipping: int = 599,
    tax: int = 0,
) -> tuple[Order, list[OrderLine]]:
    """An order in ``fulfillment_queued`` with ``lines`` of (product id, quantity, unit
    price), as checkout prices it (no payment row: the refund is not these tests')."""
    goods = sum(q * p for _, q, p in lines)
    async with transaction(create_session_factory(engine)) as session:
        order = Order(
            user_id=user_id,
            cart_id=f"cart_{uuid4().hex[:20]}",
            email="ada@example.com",
            status=OrderStatus.FULFILLMENT_QUEUED,
            subtotal=goods,
            coupon_discount=coupon_discount,
            shipping=shipping,
            tax=tax,
            total=goods - coupon_discount + shipping + tax,
            shipping_address=ADDRESS,
            payment_method_type="card",
            payment_token="pm_card_visa",
        )
        await OrderRepository(session).save(order)
        rows = [
            OrderLine(
                order_id=order.id,
                product_id=product_id,
                name=f"Thing {i}",
                quantity=quantity,
                list_price=price,
                unit_price=price,
                line_total=price * quantity,
            )
            for i, (product_id, quantity, price) in enumerate(lines)
        ]
        session.add_all(rows)
    return order, rows


async def ship(engine: AsyncEngine, order_id: str, parcels: list[Parcel]) -> None:
    """The order's fulfilment and its ``parcels``."""
    async with transaction(create_session_factory(engine)) as session:
        orders = OrderRepository(session)
        repo = FulfillmentRepository(session)
        lines = await orders.lines(order_id)
        fulfillment = await repo.for_order(order_id)
        if fulfillment is None:
            fulfillment = Fulfillment(
                order_id=order_id, status=FulfillmentStatus.IN_PROGRESS, shipping_address=ADDRESS
            )
            await repo.insert_once(
                fulfillment,
                [
                    FulfillmentLine(
                        fulfillment_id=fulfillment.id,
                        order_line_id=ln.id,
                        product_id=ln.product_id,
                        name=ln.name,
                        quantity=ln.quantity,
                    )
                    for ln in lines
                ],
            )
            fulfillment = await repo.for_order(order_id)
            assert fulfillment is not None
        for parcel in parcels:
            delivered = parcel.delivered_at is not None
            shipment = Shipment(
                fulfillment_id=fulfillment.id,
                order_id=order_id,
                status=ShipmentStatus.DELIVERED if delivered else ShipmentStatus.IN_TRANSIT,
                shipped_at=(parcel.delivered_at or utcnow()) - timedelta(days=2),
                delivered_at=parcel.delivered_at,
            )
            await repo.add_shipment(
                shipment,
                [
                    ShipmentLine(
                        shipment_id=shipment.id,
                        order_line_id=lines[i].id,
                        product_id=lines[i].product_id,
                        quantity=units,
                    )
                    for i, units in parcel.units.items()
                ],
            )


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


async def approved_return(
    engine: AsyncEngine,
    settings: Settings,
    order: dict[str, Any],
    quantities: dict[str, int],
    reason: ReturnReason,
) -> tuple[ReturnRequest, list[ReturnLine]]:
    """A return of an order (as the API shows it) of ``quantities`` per product id, asked
    through ``ReturnService`` and marked approved (its label is ``ReturnLabels``' and the
    workflow's tests, not the refund's): the row and its lines."""
    lines = [ReturnLineCreate(product_id=p, quantity=q) for p, q in quantities.items()]
    async with transaction(create_session_factory(engine)) as session:
        request, _start = await ReturnService(session, settings).request(
            order["userId"], order["id"], ReturnCreate(lines=lines, reason=reason)
        )
        request.status = ReturnStatus.APPROVED
        ReturnRepository(session).stage(request)
        return request, await ReturnRepository(session).lines([request.id])


async def two_mugs_of_three_approved(
    http: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine, settings: Settings
) -> tuple[Shopper, dict[str, Any], ReturnRequest, ReturnLine]:
    """On the live stack: three 10.00 mugs ordered and paid (shipping 5.99, Massachusetts
    tax 6.25%: 37.87 captured), delivered two days ago, two of them asked back undamaged
    (no longer needed) and approved: 21.25 owed at receipt. The shopper, the order as the
    API shows it, the return and its line."""
    mug = await product(http, staff, price=1000, stock=10)
    shopper = await shopper_with_cart(http, [(mug, 3)])
    order = await wait_for(http, shopper.headers, (await place(http, shopper))["id"])
    assert order["status"] == "fulfillment_queued", order
    await ship(engine, order["id"], [Parcel({0: 3}, days_ago(2))])
    request, [line] = await approved_return(
        engine, settings, order, {mug["id"]: 2}, ReturnReason.NO_LONGER_NEEDED
    )
    return shopper, order, request, line


async def return_until(
    http: httpx.AsyncClient, headers: dict[str, str], return_id: str, status: str
) -> dict[str, Any]:
    """The return as ``headers``' caller sees it (``GET /api/returns/{id}``), once it is
    ``status`` (within 30 s)."""
    for _ in range(300):
        body: dict[str, Any] = (await http.get(f"/api/returns/{return_id}", headers=headers)).json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"return {return_id} is {body['status']}, not {status}")
