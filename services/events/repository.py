"""SQL for the relay: reading outbox events and the receipts ledger."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.expression import UpdateBase
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
            self._claim_receipt_statement(),
            params={"p_event_id": event_id, "p_subscriber": subscriber, "p_handled_at": utcnow()},
        )
        return inserted.first() is not None

    @staticmethod
    @cache
    def _claim_receipt_statement() -> UpdateBase:
        """Built once (a receipt per delivery, eight an order): its construction and cache
        key per call cost more of the worker's CPU than its execution (issue #15)."""
        return (
            insert(_RECEIPTS)
            .values(
                event_id=bindparam("p_event_id"),
                subscriber=bindparam("p_subscriber"),
                handled_at=bindparam("p_handled_at", type_=_RECEIPTS.c.handled_at.type),
            )
            .on_conflict_do_nothing()
            .returning(_RECEIPTS.c.event_id)
        )
