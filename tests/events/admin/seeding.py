"""Outbox events and their deliveries written straight to the database (committed, so the
API sees them), and deleted again after the test."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import delete
from sqlmodel import col

from core.db import SessionFactory, transaction
from core.events import AGGREGATE_OF, EventType
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent


def unique_subscriber(prefix: str = "sub") -> str:
    return f"{prefix}_{uuid4().hex[:10]}"


class Seeder:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self.event_ids: list[str] = []

    async def event(
        self,
        type: EventType = EventType.ORDER_CREATED,
        *,
        aggregate_id: str | None = None,
        deliveries: dict[str, DeliveryStatus] | None = None,
        age: timedelta = timedelta(0),
        delivered_age: timedelta | None = None,
        dispatched: bool = True,
        last_error: str = "CrmUnavailable: HubSpot answered 503",
        data: dict[str, Any] | None = None,
    ) -> OutboxEvent:
        """An event ``age`` old, fanned out (unless not ``dispatched``) to ``deliveries``;
        ``delivered_age``: delivered to all that long ago. The relay leaves it alone:
        it is dispatched, and its pending deliveries count as started."""
        now = utcnow()
        created = now - age
        async with transaction(self.sessions) as session:
            row = OutboxEvent(
                type=type,
                aggregate_type=AGGREGATE_OF[type],
                aggregate_id=aggregate_id or f"ord_{uuid4().hex[:12]}",
                data=data if data is not None else {"n": len(self.event_ids)},
                created_at=created,
                dispatched_at=created if dispatched else None,
                delivered_at=now - delivered_age if delivered_age is not None else None,
            )
            session.add(row)
            await session.flush()
            assert row.seq is not None
            for subscriber, status in (deliveries or {}).items():
                failed = status is DeliveryStatus.FAILED
                session.add(
                    EventDelivery(
                        event_id=row.id,
                        subscriber=subscriber,
                        event_type=row.type,
                        aggregate_type=row.aggregate_type,
                        aggregate_id=row.aggregate_id,
                        seq=row.seq,
                        status=status,
                        attempts=5 if failed else 1,
                        last_error=last_error if failed else None,
                        created_at=created,
                        started_at=created,
                        workflow_id=f"events-{row.id}-seeded",
                        finished_at=None if status is DeliveryStatus.PENDING else created,
                    )
                )
        self.event_ids.append(row.id)
        return row

    async def delivery(self, event_id: str, subscriber: str) -> EventDelivery:
        async with self.sessions() as session:
            row = await session.get(EventDelivery, (event_id, subscriber))
            assert row is not None
            return row

    async def outbox(self, event_id: str) -> OutboxEvent | None:
        async with self.sessions() as session:
            return await session.get(OutboxEvent, event_id)

    async def clean(self) -> None:
        if self.event_ids:
            async with transaction(self.sessions) as session:
                await session.exec(
                    delete(OutboxEvent).where(col(OutboxEvent.id).in_(self.event_ids))
                )


def ago(when: datetime) -> float:
    return (utcnow() - when).total_seconds()
