"""All SQL of fulfilment: fulfilment orders, their lines, shipments, labels, tracking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.errors import NotFound
from models.fulfillment import (
    Fulfillment,
    FulfillmentLine,
    FulfillmentStatus,
    Shipment,
    ShipmentLabel,
    ShipmentLine,
    TrackingEvent,
)


class FulfillmentNotFound(NotFound):
    code = "fulfillment_not_found"
    title = "No such fulfilment order"


class ShipmentNotFound(NotFound):
    code = "shipment_not_found"
    title = "No such shipment"


class FulfillmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- fulfilment orders ------------------------------------------------------------

    async def get(self, fulfillment_id: str, *, lock: bool = False) -> Fulfillment | None:
        query = select(Fulfillment).where(Fulfillment.id == fulfillment_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def require(self, fulfillment_id: str, *, lock: bool = False) -> Fulfillment:
        found = await self.get(fulfillment_id, lock=lock)
        if found is None:
            raise FulfillmentNotFound(f"no fulfilment order {fulfillment_id}")
        return found

    async def for_order(self, order_id: str, *, lock: bool = False) -> Fulfillment | None:
        query = select(Fulfillment).where(Fulfillment.order_id == order_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def queue(
        self,
        status: FulfillmentStatus | None,
        *,
        offset: int,
        limit: int,
        order_id: str | None = None,
    ) -> list[Fulfillment]:
        """The warehouse's list: most urgent first, then oldest first."""
        query = select(Fulfillment)
        if status is not None:
            query = query.where(Fulfillment.status == status)
        if order_id is not None:
            query = query.where(Fulfillment.order_id == order_id)
        result = await self.session.exec(
            query.order_by(
                col(Fulfillment.priority).desc(),
                col(Fulfillment.created_at),
                col(Fulfillment.id),
            )
            .offset(offset)
            .limit(limit)
        )
        return list(result.all())

    async def count(self, status: FulfillmentStatus | None, order_id: str | None = None) -> int:
        query = select(func.count()).select_from(Fulfillment)
        if status is not None:
            query = query.where(Fulfillment.status == status)
        if order_id is not None:
            query = query.where(Fulfillment.order_id == order_id)
        return int((await self.session.exec(query)).one())

    async def insert_once(self, fulfillment: Fulfillment, lines: Sequence[FulfillmentLine]) -> bool:
        """Insert the fulfilment and its lines unless the order has one; True if inserted."""
        inserted = await self.session.exec(
            insert(Fulfillment)
            .values(**fulfillment.model_dump())
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(col(Fulfillment.id))
        )
        if inserted.first() is None:
            return False
        self.session.add_all(lines)
        await self.session.flush()
        return True

    def stage(self, row: Fulfillment | Shipment) -> None:
        self.session.add(row)

    async def lines(self, fulfillment_id: str) -> list[FulfillmentLine]:
        result = await self.session.exec(
            select(FulfillmentLine)
            .where(FulfillmentLine.fulfillment_id == fulfillment_id)
            .order_by(col(FulfillmentLine.id))
        )
        return list(result.all())

    async def lines_of(self, fulfillment_ids: Sequence[str]) -> list[FulfillmentLine]:
        if not fulfillment_ids:
            return []
        result = await self.session.exec(
            select(FulfillmentLine)
            .where(col(FulfillmentLine.fulfillment_id).in_(fulfillment_ids))
            .order_by(col(FulfillmentLine.id))
        )
        return list(result.all())

    # --- shipments --------------------------------------------------------------------

    async def shipment(self, shipment_id: str, *, lock: bool = False) -> Shipment | None:
        query = select(Shipment).where(Shipment.id == shipment_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def require_shipment(self, shipment_id: str, *, lock: bool = False) -> Shipment:
        found = await self.shipment(shipment_id, lock=lock)
        if found is None:
            raise ShipmentNotFound(f"no shipment {shipment_id}")
        return found

    async def shipment_by_tracker(self, tracker_id: str) -> Shipment | None:
        result = await self.session.exec(
            select(Shipment).where(Shipment.provider_tracker_id == tracker_id)
        )
        return result.first()

    async def shipments(self, fulfillment_id: str, *, fresh: bool = False) -> list[Shipment]:
        """``fresh``: as committed now (under the fulfilment's lock), overwriting parcels
        this session loaded earlier: another transaction may have moved them since."""
        query = (
            select(Shipment)
            .where(Shipment.fulfillment_id == fulfillment_id)
            .order_by(col(Shipment.created_at), col(Shipment.id))
        )
        if fresh:
            query = query.execution_options(populate_existing=True)
        return list((await self.session.exec(query)).all())

    async def shipments_of(self, fulfillment_ids: Sequence[str]) -> list[Shipment]:
        if not fulfillment_ids:
            return []
        result = await self.session.exec(
            select(Shipment)
            .where(col(Shipment.fulfillment_id).in_(fulfillment_ids))
            .order_by(col(Shipment.created_at), col(Shipment.id))
        )
        return list(result.all())

    async def shipments_of_order(self, order_id: str) -> list[Shipment]:
        result = await self.session.exec(
            select(Shipment)
            .where(Shipment.order_id == order_id)
            .order_by(col(Shipment.created_at), col(Shipment.id))
        )
        return list(result.all())

    async def shipment_lines(self, shipment_ids: Sequence[str]) -> list[ShipmentLine]:
        if not shipment_ids:
            return []
        result = await self.session.exec(
            select(ShipmentLine)
            .where(col(ShipmentLine.shipment_id).in_(shipment_ids))
            .order_by(col(ShipmentLine.id))
        )
        return list(result.all())

    async def add_shipment(self, shipment: Shipment, lines: Sequence[ShipmentLine]) -> None:
        self.session.add(shipment)
        await self.session.flush()
        self.session.add_all(lines)
        await self.session.flush()

    async def labels(self, shipment_id: str) -> list[ShipmentLabel]:
        result = await self.session.exec(
            select(ShipmentLabel)
            .where(ShipmentLabel.shipment_id == shipment_id)
            .order_by(col(ShipmentLabel.created_at), col(ShipmentLabel.id))
        )
        return list(result.all())

    async def add_label_once(self, label: ShipmentLabel) -> bool:
        """Record a bought label unless it is recorded (same provider shipment)."""
        inserted = await self.session.exec(
            insert(ShipmentLabel)
            .values(**label.model_dump())
            .on_conflict_do_nothing(index_elements=["provider_shipment_id"])
            .returning(col(ShipmentLabel.id))
        )
        return inserted.first() is not None

    async def void_labels(self, shipment_id: str, at: datetime) -> int:
        """Mark the shipment's labels refunded (the ones not marked yet)."""
        result = await self.session.exec(
            update(ShipmentLabel)
            .where(col(ShipmentLabel.shipment_id) == shipment_id)
            .where(col(ShipmentLabel.voided_at).is_(None))
            .values(voided_at=at)
            .returning(col(ShipmentLabel.id))
        )
        return len(result.all())

    # --- tracking ---------------------------------------------------------------------

    async def add_tracking_once(self, event: TrackingEvent) -> bool:
        """Append a carrier update unless it was seen (same provider event id)."""
        inserted = await self.session.exec(
            insert(TrackingEvent)
            .values(**event.model_dump())
            .on_conflict_do_nothing(index_elements=["provider_event_id"])
            .returning(col(TrackingEvent.id))
        )
        return inserted.first() is not None

    async def add_tracking_new(self, events: Sequence[TrackingEvent]) -> set[str]:
        """Append, in one statement, the carrier updates not seen before (by provider
        event id); answers the provider event ids it added."""
        if not events:
            return set()
        inserted = await self.session.exec(
            insert(TrackingEvent)
            .values([event.model_dump() for event in events])
            .on_conflict_do_nothing(index_elements=["provider_event_id"])
            .returning(col(TrackingEvent.provider_event_id))
        )
        return {str(row[0]) for row in inserted.all()}

    async def tracking(self, shipment_id: str) -> list[TrackingEvent]:
        result = await self.session.exec(
            select(TrackingEvent)
            .where(TrackingEvent.shipment_id == shipment_id)
            .order_by(col(TrackingEvent.occurred_at), col(TrackingEvent.id))
        )
        return list(result.all())

    async def latest_tracking(self, shipment_ids: Sequence[str]) -> list[TrackingEvent]:
        """Each shipment's newest carrier update (shipments without one are left out)."""
        if not shipment_ids:
            return []
        result = await self.session.exec(
            select(TrackingEvent)
            .where(col(TrackingEvent.shipment_id).in_(shipment_ids))
            .ext(distinct_on(col(TrackingEvent.shipment_id)))
            .order_by(
                col(TrackingEvent.shipment_id),
                col(TrackingEvent.occurred_at).desc(),
                col(TrackingEvent.id).desc(),
            )
        )
        return list(result.all())
