"""What ``shop seed`` needs to carry its orders past the sale: which seeded orders can ship
(and which were shipped or returned by an earlier run), where their parcels and returns
stand, and the after-sale rows moved to the carrier's times once everything has settled.
All its SQL is here; the parcels and returns themselves go through the workflows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.fulfillment import Fulfillment, FulfillmentLine, Shipment
from models.orders import Order, OrderStatus
from models.returns import ReturnRequest
from models.users import User
from services.seeding import _ids


@dataclass(frozen=True)
class ShippableOrder:
    """A seeded order that reached the warehouse, with its fulfilment's lines."""

    order_id: str
    user_id: str
    created_at: datetime
    status: str
    fulfillment_id: str | None
    lines: tuple[tuple[str, int], ...]  # (order line, quantity), by order line id
    shipped_before: bool  # an earlier run (or staff) created a parcel
    returned_before: bool


@dataclass(frozen=True)
class ParcelState:
    status: str
    tracker_id: str | None
    delivered_at: datetime | None
    delayed: bool


# The parcels' rows at the carrier's times: each shipment created a little before its
# label, shipped when the label was bought, its labels with it.
MOVE_SHIPMENTS = """
WITH t AS (
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS t(id, at)
), labels AS (
    UPDATE shipment_labels l SET created_at = t.at FROM t WHERE l.shipment_id = t.id
)
UPDATE shipments s
SET created_at = t.at - interval '25 minutes', shipped_at = t.at,
    updated_at = greatest(t.at, coalesce(s.last_carrier_update_at, t.at))
FROM t WHERE s.id = t.id
"""
# The orders' timeline entries written since ``since``: a carrier update at its own time
# (``occurredAt``), a parcel flagged delayed when its silence reached the stall hours
# (``quietSince`` + ``stallHours``), a label at its parcel's ``shipped_at``, and any
# other (a status the parcel's move brought about, written in the same transaction) at
# the time of its nearest such entry. Then the fulfilment after the order's last earlier entry, and
# the order's ``updated_at`` at its latest entry.
MOVE_TIMELINES = """
WITH written AS (
    SELECT e.id, e.order_id, e.created_at AS real_at,
        CASE WHEN e.data ? 'occurredAt' THEN CAST(e.data ->> 'occurredAt' AS timestamptz)
             WHEN e.data ? 'quietSince' THEN CAST(e.data ->> 'quietSince' AS timestamptz)
                 + CAST(e.data ->> 'stallHours' AS float) * interval '1 hour'
             WHEN e.data ? 'shipmentId' THEN s.shipped_at END AS at
    FROM order_events e LEFT JOIN shipments s ON s.id = e.data ->> 'shipmentId'
    WHERE e.order_id = ANY(CAST(:ids AS text[])) AND e.created_at >= :since
), placed AS (
    SELECT w.id, coalesce(w.at, (
        SELECT k.at FROM written k
        WHERE k.order_id = w.order_id AND k.at IS NOT NULL
        ORDER BY abs(extract(epoch FROM k.real_at - w.real_at)), k.real_at DESC
        LIMIT 1
    )) AS at
    FROM written w
)
UPDATE order_events e SET created_at = placed.at
FROM placed WHERE e.id = placed.id AND placed.at IS NOT NULL
"""
MOVE_FULFILMENTS = """
UPDATE fulfillments f
SET created_at = coalesce((
        SELECT max(e.created_at) + interval '2 seconds' FROM order_events e
        WHERE e.order_id = f.order_id AND e.created_at < (
            SELECT min(s.created_at) FROM shipments s WHERE s.fulfillment_id = f.id
        )
    ), f.created_at),
    updated_at = coalesce(
        (SELECT max(s.updated_at) FROM shipments s WHERE s.fulfillment_id = f.id), f.updated_at
    )
WHERE f.order_id = ANY(CAST(:ids AS text[]))
"""
ORDER_UPDATED = """
UPDATE orders o SET updated_at = (SELECT max(e.created_at) FROM order_events e
                                  WHERE e.order_id = o.id)
WHERE o.id = ANY(CAST(:ids AS text[]))
"""


AT_THE_WAREHOUSE = [
    OrderStatus.FULFILLMENT_QUEUED,
    OrderStatus.PARTIALLY_SHIPPED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
]


class AfterSaleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def shippable(self, user_ids: Sequence[str]) -> list[ShippableOrder]:
        """The seeded customers' orders that reached ``fulfillment_queued`` or later,
        oldest first, with their fulfilment (None until the relay has started it)."""
        rows = (
            await self.session.exec(
                select(Order.id, Order.user_id, Order.created_at, Order.status)
                .where(
                    col(Order.user_id) == _ids("user_ids", user_ids),
                    col(Order.status).in_(AT_THE_WAREHOUSE),
                )
                .order_by(col(Order.created_at), col(Order.id))
            )
        ).all()
        order_ids = [row[0] for row in rows]
        fulfillments = dict(
            (
                await self.session.exec(
                    select(Fulfillment.order_id, Fulfillment.id).where(
                        col(Fulfillment.order_id) == _ids("order_ids", order_ids)
                    )
                )
            ).all()
        )
        lines: dict[str, list[tuple[str, int]]] = defaultdict(list)
        found = await self.session.exec(
            select(
                FulfillmentLine.fulfillment_id,
                FulfillmentLine.order_line_id,
                FulfillmentLine.quantity,
            )
            .where(
                col(FulfillmentLine.fulfillment_id) == _ids("f_ids", list(fulfillments.values()))
            )
            .order_by(col(FulfillmentLine.order_line_id))
        )
        for fulfillment_id, line_id, quantity in found.all():
            lines[fulfillment_id].append((line_id, quantity))
        shipped = set(
            (
                await self.session.exec(
                    select(Shipment.order_id).where(
                        col(Shipment.order_id) == _ids("shipped_ids", order_ids)
                    )
                )
            ).all()
        )
        returned = set(
            (
                await self.session.exec(
                    select(ReturnRequest.order_id).where(
                        col(ReturnRequest.order_id) == _ids("returned_ids", order_ids)
                    )
                )
            ).all()
        )
        return [
            ShippableOrder(
                order_id=order_id,
                user_id=user_id,
                created_at=created_at,
                status=str(status),
                fulfillment_id=fulfillments.get(order_id),
                lines=tuple(lines.get(fulfillments.get(order_id, ""), [])),
                shipped_before=order_id in shipped,
                returned_before=order_id in returned,
            )
            for order_id, user_id, created_at, status in rows
        ]

    async def parcels(self, shipment_ids: Sequence[str]) -> dict[str, ParcelState]:
        rows = await self.session.exec(
            select(Shipment).where(col(Shipment.id) == _ids("shipment_ids", shipment_ids))
        )
        return {
            s.id: ParcelState(str(s.status), s.provider_tracker_id, s.delivered_at, s.delayed)
            for s in rows.all()
        }

    async def user_id(self, email: str) -> str | None:
        found = await self.session.exec(select(User.id).where(User.email == email))
        return found.first()

    async def move_to_carrier_times(
        self, labels: Sequence[tuple[str, datetime]], order_ids: Sequence[str], since: datetime
    ) -> None:
        """The after-sale rows the seed's run wrote, at the times the carrier gave."""
        if not labels:
            return
        for statement, params in (
            (MOVE_SHIPMENTS, {"ids": [i for i, _ in labels], "ats": [at for _, at in labels]}),
            (MOVE_TIMELINES, {"ids": list(order_ids), "since": since}),
            (MOVE_FULFILMENTS, {"ids": list(order_ids)}),
            (ORDER_UPDATED, {"ids": list(order_ids)}),
        ):
            # sqlmodel types exec() for select() only; text() runs as in SQLAlchemy.
            await self.session.exec(text(statement), params=params)  # type: ignore[call-overload]
