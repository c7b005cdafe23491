"""SQL for a relay's first pass: the events dispatched since its worker process started.

A subscriber (or an event type of one) that a deploy adds gets every event dispatched
from the moment the first worker process whose code has it started, and none dispatched
before (no history is replayed). Every relay fans out to the pairs some relay has
registered (``services.events.subscriptions``), but a process registers its pairs only at
its relay's first pass: its Temporal workers, its connections and its schedules come
first, and meanwhile the relays of the older code dispatch events without the new pair.
The first pass therefore gives its own pairs a delivery of each event of their type
dispatched since the process started (``owed_since``), before it dispatches anything, under
the relay lock: no event falls between the deploy and the registration. A pair that some
relay already knew has those deliveries (the fan-out wrote them): nothing is added twice.

Times are the database's: ``dispatched_at`` is its clock under the relay lock, and the
start is its clock (read first) less the process's monotonic uptime (read after), so the
workers' clocks and their skew play no part, and the start is never taken late (at most a
round trip early).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import String, Table, func, or_, update, values
from sqlalchemy import column as core_column
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.events.subscriptions import Pair

_DELIVERIES: Table = SQLModel.metadata.tables["event_deliveries"]
_OUTBOX: Table = SQLModel.metadata.tables["outbox"]
# Only narrows the outbox rows looked at (through its two ``delivered_at`` indexes): an
# event dispatched since the start is undelivered or was delivered after it, give or take
# the skew of the clock that wrote its ``delivered_at``.
_DELIVERED_SLACK = timedelta(minutes=10)


class CatchUpRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def clock(self) -> datetime:
        """The database's clock now (not the transaction's start)."""
        now: datetime = (await self.session.exec(select(func.clock_timestamp()))).one()
        return now

    async def owed_since(self, pairs: Collection[Pair], since: datetime) -> list[str]:
        """Give each of ``pairs`` a pending delivery of every event of its type dispatched
        at or after ``since`` that it lacks; those events are no longer delivered
        (``delivered_at`` cleared until their deliveries finish). The ids of the events
        that gained one."""
        if not pairs:
            return []
        outbox, deliveries = _OUTBOX.c, _DELIVERIES.c
        wanted = values(
            core_column("subscriber", String), core_column("event_type", String), name="wanted"
        ).data(sorted(pairs))
        owed = (
            core_select(
                outbox.id,
                wanted.c.subscriber,
                outbox.type,
                outbox.aggregate_type,
                outbox.aggregate_id,
                outbox.seq,
            )
            .join_from(_OUTBOX, wanted, wanted.c.event_type == outbox.type)
            .where(
                outbox.dispatched_at >= since,
                or_(
                    outbox.delivered_at.is_(None),
                    outbox.delivered_at >= since - _DELIVERED_SLACK,
                ),
            )
        )
        added = await self.session.exec(
            insert(_DELIVERIES)
            .from_select(
                ["event_id", "subscriber", "event_type", "aggregate_type", "aggregate_id", "seq"],
                owed,
            )
            .on_conflict_do_nothing()
            .returning(deliveries.event_id)
        )
        event_ids = sorted({row[0] for row in added.all()})
        if event_ids:
            await self.session.exec(
                update(_OUTBOX)
                .where(outbox.id.in_(event_ids), outbox.delivered_at.is_not(None))
                .values(delivered_at=None)
            )
        return event_ids
