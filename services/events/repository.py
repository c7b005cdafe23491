"""SQL for the relay: reading outbox events and the receipts ledger."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.events import EventReceipt
from models.outbox import OutboxEvent
from services.events.subscribers import DomainEvent

# A Core insert, not an ORM-enabled one (about half the CPU): a receipt per delivery, and
# no caller holds receipts as objects (issue #15).
_RECEIPTS: Table = SQLModel.metadata.tables[EventReceipt.__tablename__]


def domain_event(row: OutboxEvent) -> DomainEvent:
    """An outbox row as handlers see it."""
    assert row.seq is not None
    return DomainEvent(
        id=row.id,
        type=row.type,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        seq=row.seq,
        data=row.data,
        created_at=row.created_at,
        traceparent=row.traceparent,
    )


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def event(self, event_id: str) -> DomainEvent | None:
        row = await self.session.get(OutboxEvent, event_id)
        return None if row is None else domain_event(row)

    async def about_user(self, user_id: str, aggregate_ids: Sequence[str]) -> list[OutboxEvent]:
        """Events of these aggregates (the user's own, their orders) whose data names the
        user (``userId``)."""
        rows = await self.session.exec(
            select(OutboxEvent).where(
                col(OutboxEvent.aggregate_id).in_([user_id, *aggregate_ids]),
                col(OutboxEvent.data)["userId"].astext == user_id,
            )
        )
        return list(rows.all())

    def stage(self, row: OutboxEvent) -> None:
        self.session.add(row)

    async def claim_receipt(self, event_id: str, subscriber: str) -> bool:
        """Record that ``subscriber`` handles ``event_id`` in this transaction; False if it
        already has. A concurrent claim waits for this transaction and then sees it."""
        inserted = await self.session.exec(
            insert(_RECEIPTS)
            .values(event_id=event_id, subscriber=subscriber, handled_at=utcnow())
            .on_conflict_do_nothing()
            .returning(_RECEIPTS.c.event_id)
        )
        return inserted.first() is not None
