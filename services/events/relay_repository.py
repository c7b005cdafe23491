"""SQL for the relay's work list: its lock, fan-out, drops, head-of-line claims and
starts, and the pages of the lost-delivery sweep. What one delivery does to its row (an
attempt, finishing, a new generation) is ``services.events.deliveries``."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from functools import cache

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    case,
    func,
    tuple_,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from core.db import insert_rows
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from services.events.subscriptions import Pair
from workflows.types.events import DeliveryBatch, DeliveryRef, StartedDelivery

# pg_advisory_xact_lock key of a relay pass ("outbox" in ASCII): passes never overlap.
RELAY_LOCK = 0x6F7574626F78

_NAMES = ARRAY(String)
# Where the lost-delivery sweep has got to: the last (seq, subscriber) it looked at.
SweepKey = tuple[int, str]

# Core statements where no caller holds the rows as objects (``services.events.deliveries``
# says why).
_DELIVERIES: Table = SQLModel.metadata.tables["event_deliveries"]
_SUBSCRIPTIONS: Table = SQLModel.metadata.tables["event_subscriptions"]


class RelayRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # A relay passes at every outbox insert and every finished delivery (several times an
    # order), mostly to find nothing: its statements are built once, with bind parameters
    # (issue #15: an empty pass cost about 5 ms of the worker's CPU, most of it building
    # the statements and their cache keys).

    async def lock_relay(self) -> None:
        """Wait for other relay passes; held until this transaction ends."""
        connection = await self.session.connection()
        await connection.execute(self._lock_statement())

    @staticmethod
    @cache
    def _lock_statement() -> Select[int]:
        return core_select(func.pg_advisory_xact_lock(RELAY_LOCK))

    async def undispatched(self, limit: int) -> list[OutboxEvent]:
        result = await self.session.exec(self._undispatched_statement(), params={"limit": limit})
        return list(result.all())

    @staticmethod
    @cache
    def _undispatched_statement() -> SelectOfScalar[OutboxEvent]:
        return (
            select(OutboxEvent)
            .where(col(OutboxEvent.dispatched_at).is_(None))
            .order_by(col(OutboxEvent.seq))
            .limit(bindparam("limit", type_=Integer))
        )

    async def add_deliveries(self, event: OutboxEvent, subscribers: Iterable[str]) -> None:
        assert event.seq is not None
        rows = [
            {
                "event_id": event.id,
                "subscriber": name,
                "event_type": event.type,
                "aggregate_type": event.aggregate_type,
                "aggregate_id": event.aggregate_id,
                "seq": event.seq,
            }
            for name in subscribers
        ]
        await insert_rows(self.session, self._add_statement(), rows)

    # The relay fans every event out (one to three subscribers): a statement built once,
    # not a multi-VALUES one compiled at every call (``core.db.insert_rows``, issue #15).
    @staticmethod
    @cache
    def _add_statement() -> ReturningInsert[tuple[str]]:
        return insert(_DELIVERIES).on_conflict_do_nothing().returning(_DELIVERIES.c.event_id)

    async def mark_dispatched(self, event_ids: Sequence[str], *, delivered: Sequence[str]) -> None:
        """Fanned out; ``delivered`` (wanted by no subscriber) are done at once as well.
        The database's clock, read after the relay lock was taken (the statement's start):
        a relay's first pass catches up on what was dispatched since its process started
        by that clock (``services.events.catch_up``)."""
        now = func.statement_timestamp()
        await self.session.exec(
            update(OutboxEvent)
            .where(col(OutboxEvent.id).in_(event_ids))
            .values(
                dispatched_at=now,
                delivered_at=case(
                    (col(OutboxEvent.id).in_(delivered), now), else_=col(OutboxEvent.delivered_at)
                ),
            )
        )

    async def drop_pending_unknown_for(self, grace: timedelta) -> list[DeliveryRef]:
        """Pending deliveries older than ``grace`` whose (subscriber, event type) no relay
        has known within ``grace`` become ``dropped``: the subscriber was taken out of the
        code (or no longer takes that type). One a live worker knows is never dropped,
        whichever relay runs this; nor one a worker of older code (which writes no pairs)
        fanned out less than ``grace`` ago."""
        subscriptions = _SUBSCRIPTIONS.c
        known = (
            core_select(subscriptions.subscriber)
            .where(
                subscriptions.subscriber == EventDelivery.subscriber,
                subscriptions.event_type == EventDelivery.event_type,
                subscriptions.known_at >= func.now() - grace,
            )
            .exists()
        )
        result = await self.session.exec(
            update(EventDelivery)
            .where(
                col(EventDelivery.status) == DeliveryStatus.PENDING,
                col(EventDelivery.created_at) < func.now() - grace,
                ~known,
            )
            .values(status=DeliveryStatus.DROPPED, finished_at=utcnow())
            .returning(
                col(EventDelivery.event_id),
                col(EventDelivery.subscriber),
                col(EventDelivery.generation),
                col(EventDelivery.event_type),
            )
        )
        return [_ref(*row) for row in result.all()]

    async def heads(self, limit: int, known: Collection[Pair]) -> list[DeliveryRef]:
        """Pending, in no batch yet, and no earlier pending delivery of the same aggregate
        to the same subscriber: the deliveries that may start now, oldest first. Only
        those of ``known`` (subscriber, event type) pairs: the calling relay's own, which
        its worker can deliver; the others wait for a relay that knows them."""
        pairs = sorted(known)
        connection = await self.session.connection()
        result = await connection.execute(
            self._heads_statement(),
            {
                "p_subscribers": [subscriber for subscriber, _ in pairs],
                "p_event_types": [event_type for _, event_type in pairs],
                "p_limit": limit,
            },
        )
        return [_ref(*row) for row in result.all()]

    async def claim(self, batch: DeliveryBatch) -> None:
        """Write the batch's workflow id on its deliveries, before it is started: a pass
        that dies before recording the start leaves them to the next pass, which starts
        the same workflow again (``claimed``)."""
        await self.session.exec(
            update(EventDelivery)
            .where(_any_of(batch.deliveries), col(EventDelivery.started_at).is_(None))
            .values(workflow_id=batch.workflow_id)
        )

    async def claimed(self, limit: int) -> list[DeliveryBatch]:
        """Up to ``limit`` batches claimed by a pass whose start was not recorded (it
        failed, or its relay died), each whole: their pending deliveries with no
        ``started_at``. A batch of a relay of other code may hold subscribers the caller
        does not know: it is started all the same (under its id, it may already run), and
        a delivery its worker cannot make goes back to pending for a relay that can."""
        # Rows, not columns: one is rarely there (a pass died), so nothing to build.
        result = await self.session.exec(self._claimed_statement(), params={"limit": limit})
        batches: dict[str, list[DeliveryRef]] = {}
        for row in result.all():
            assert row.workflow_id is not None
            ref = _ref(row.event_id, row.subscriber, row.generation, row.event_type)
            batches.setdefault(row.workflow_id, []).append(ref)
        return [DeliveryBatch(workflow_id=w, deliveries=refs) for w, refs in batches.items()]

    @staticmethod
    @cache
    def _claimed_statement() -> SelectOfScalar[EventDelivery]:
        unstarted = [
            col(EventDelivery.status) == DeliveryStatus.PENDING,
            col(EventDelivery.started_at).is_(None),
        ]
        # The batches written first first (two of one instant by id): a backlog larger
        # than ``limit`` is started oldest first, not in whichever order the plan met them.
        first_written = func.min(col(EventDelivery.created_at))
        ids = (
            select(col(EventDelivery.workflow_id))
            .where(*unstarted, col(EventDelivery.workflow_id).is_not(None))
            .group_by(col(EventDelivery.workflow_id))
            .order_by(first_written, col(EventDelivery.workflow_id))
            .limit(bindparam("limit", type_=Integer))
        )
        # Returned in that order too, the order the pass starts them in: in the rows' seq
        # order, two batches of one instant came by their events, not by id, and a batch
        # written first whose events came later came after the others. A batch's own
        # deliveries in seq order.
        return (
            select(EventDelivery)
            .where(*unstarted, col(EventDelivery.workflow_id).in_(ids.scalar_subquery()))
            .order_by(
                first_written.over(partition_by=col(EventDelivery.workflow_id)),
                col(EventDelivery.workflow_id),
                col(EventDelivery.seq),
                col(EventDelivery.subscriber),
            )
        )

    async def traceparents(self, event_ids: Iterable[str]) -> dict[str, str]:
        """The traceparent each of these events was written in (those written in one)."""
        result = await self.session.exec(
            select(col(OutboxEvent.id), col(OutboxEvent.traceparent)).where(
                col(OutboxEvent.id).in_(list(set(event_ids))),
                col(OutboxEvent.traceparent).is_not(None),
            )
        )
        return {event_id: traceparent for event_id, traceparent in result.all() if traceparent}

    async def mark_started(self, batches: Sequence[DeliveryBatch]) -> None:
        """The deliveries of these (claimed) batches are started; one dropped meanwhile
        (no relay had known its subscriber for the grace) never was."""
        now = utcnow()
        for batch in batches:
            await self.session.exec(
                update(EventDelivery)
                .where(
                    _any_of(batch.deliveries),
                    col(EventDelivery.workflow_id) == batch.workflow_id,
                    col(EventDelivery.started_at).is_(None),
                    col(EventDelivery.status) != DeliveryStatus.DROPPED,
                )
                .values(started_at=now)
            )

    async def started_before(
        self, age: timedelta, limit: int, *, after: SweepKey | None = None
    ) -> list[StartedDelivery]:
        """Pending deliveries started more than ``age`` ago (their workflow may be gone),
        in (seq, subscriber) order, a unique key (an event's deliveries share its seq):
        the first ``limit`` after ``after``, so that the sweep pages through them all."""
        conditions = [
            col(EventDelivery.status) == DeliveryStatus.PENDING,
            col(EventDelivery.started_at) < utcnow() - age,
        ]
        if after is not None:
            conditions.append(
                tuple_(col(EventDelivery.seq), col(EventDelivery.subscriber)) > tuple_(*after)
            )
        result = await self.session.exec(
            select(EventDelivery)
            .where(*conditions)
            .order_by(col(EventDelivery.seq), col(EventDelivery.subscriber))
            .limit(limit)
        )
        return [
            StartedDelivery(
                event_id=row.event_id,
                subscriber=row.subscriber,
                generation=row.generation,
                event_type=row.event_type,
                workflow_id=row.workflow_id,
                seq=row.seq,
            )
            for row in result.all()
        ]

    @staticmethod
    @cache
    def _heads_statement() -> Select[str, str, int, str]:
        # Every relay pass asks it (issue #15). The pairs are two arrays, each one
        # parameter: an IN list of ~80 pairs was ~160 parameters to render and send.
        deliveries = _DELIVERIES.c
        earlier = _DELIVERIES.alias().c
        blocked = (
            core_select(earlier.event_id)
            .where(
                earlier.status == DeliveryStatus.PENDING,
                earlier.subscriber == deliveries.subscriber,
                earlier.aggregate_type == deliveries.aggregate_type,
                earlier.aggregate_id == deliveries.aggregate_id,
                earlier.seq < deliveries.seq,
            )
            .exists()
        )
        return (
            core_select(
                deliveries.event_id,
                deliveries.subscriber,
                deliveries.generation,
                deliveries.event_type,
            )
            .where(
                deliveries.status == DeliveryStatus.PENDING,
                deliveries.started_at.is_(None),
                deliveries.workflow_id.is_(None),
                tuple_(deliveries.subscriber, deliveries.event_type).in_(
                    core_select(
                        func.unnest(bindparam("p_subscribers", type_=_NAMES)),
                        func.unnest(bindparam("p_event_types", type_=_NAMES)),
                    )
                ),
                ~blocked,
            )
            .order_by(deliveries.seq, deliveries.subscriber)
            .limit(bindparam("p_limit", type_=Integer))
        )


def _any_of(refs: Sequence[DeliveryRef]) -> ColumnElement[bool]:
    return tuple_(
        col(EventDelivery.event_id), col(EventDelivery.subscriber), col(EventDelivery.generation)
    ).in_([(r.event_id, r.subscriber, r.generation) for r in refs])


def _ref(event_id: str, subscriber: str, generation: int, event_type: str) -> DeliveryRef:
    return DeliveryRef(
        event_id=event_id, subscriber=subscriber, generation=generation, event_type=event_type
    )
