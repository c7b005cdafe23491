"""Fulfilment on the live stack: finding an order's fulfilment, its lines, and buying a
label as the parcel's ShipmentWorkflow records one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory, transaction
from models.fulfillment import Fulfillment, FulfillmentLine, Shipment, ShipmentStatus
from tests.factories import signed_up


async def eventually(check: Any, what: str, within: float = 30.0) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    for _ in range(int(within / 0.1)):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {within} s")


async def fulfilment_of(engine: AsyncEngine, order_id: str) -> str:
    async def row() -> str | None:
        async with create_session_factory(engine)() as session:
            found = (
                await session.exec(select(Fulfillment.id).where(Fulfillment.order_id == order_id))
            ).first()
        return found

    fulfillment_id: str = await eventually(row, f"fulfilment of {order_id}")
    return fulfillment_id


async def order_lines(engine: AsyncEngine, fulfillment_id: str) -> list[dict[str, Any]]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(FulfillmentLine)
            .where(FulfillmentLine.fulfillment_id == fulfillment_id)
            .order_by(col(FulfillmentLine.id))
        )
        return [{"id": r.order_line_id, "quantity": r.quantity} for r in rows.all()]


async def label_bought(engine: AsyncEngine, shipment_id: str) -> None:
    """As the parcel's ShipmentWorkflow records a bought label (unless it already has)."""
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(Shipment)
            .where(col(Shipment.id) == shipment_id, col(Shipment.status) == ShipmentStatus.PENDING)
            .values(status=ShipmentStatus.LABEL_PURCHASED, carrier="USPS", tracking_code="9400TEST")
        )


async def shopper_headers(http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    return await signed_up(http)
