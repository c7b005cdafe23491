"""SQL for the relay's work list: fan-out, head-of-line starts and finishing deliveries."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import timedelta
from functools import cache

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    Select,
    String,
    Table,
    Update,
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

from core.db import insert_rows, locked
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from services.events.subscribers import DomainEvent
from services.events.subscriptions import Pair
from workflows.types.events import DeliveryBatch, DeliveryRef, StartedDelivery

# The channel the outbox's insert trigger notifies (migration e7a1c0de0003); finishing a
# delivery notifies it too, so the relay starts the aggregate's next delivery at once.
CHANNEL = "shop_outbox"
# pg_advisory_xact_lock key of a relay pass ("outbox" in ASCII): passes never overlap.
RELAY_LOCK = 0x6F7574626F78

_NAMES = ARRAY(String)
# Where the lost-delivery sweep has got to: the last (seq, subscriber) it looked at.
SweepKey = tuple[int, str]
_UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)

# The tables themselves, for the statements of one delivery (several an event, eight an
# order): Core statements, not ORM-enabled ones, which cost about twice the worker's CPU
# each (the ORM's bulk-update and bulk-insert steps, its session synchronisation, its
# loading of rows as objects) for rows no caller holds as objects (issue #15).
_DELIVERIES: Table = SQLModel.metadata.tables["event_deliveries"]
_OUTBOX: Table = SQLModel.metadata.tables["outbox"]
_SUBSCRIPTIONS: Table = SQLModel.metadata.tables["event_subscriptions"]


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- the relay pass ------------------------------------------------------------

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

    async def restart(self, ref: DeliveryRef) -> bool:
        """A new generation, not started: the next pass starts a fresh workflow (the relay
        is woken at commit). False if it is no longer pending.

        With a fresh budget, as a replay: the new workflow retries up to
        ``EVENT_MAX_ATTEMPTS`` times whatever the lost one had spent, so ``attempts``
        starts again from 0 (``last_error`` kept). Carried over, a delivery restarted
        after its batch was terminated showed 11 attempts against a limit of 10 and
        stayed pending while its new run retried, up to 10 more."""
        result = await self.session.exec(
            update(EventDelivery)
            .where(*_this(ref), col(EventDelivery.status) == DeliveryStatus.PENDING)
            .values(
                generation=EventDelivery.generation + 1,
                attempts=0,
                started_at=None,
                workflow_id=None,
            )
            .returning(col(EventDelivery.event_id))
        )
        restarted = result.first() is not None
        if restarted:
            await self.notify_relay()
        return restarted

    # --- one delivery --------------------------------------------------------------

    async def begin_attempt(
        self, event_id: str, subscriber: str, generation: int
    ) -> DomainEvent | None:
        """Count an attempt of a pending delivery of this generation and read its event,
        in one statement (the handler's transaction read the outbox row again, issue
        #15); None if there is no such delivery (finished, dropped, or replayed since).
        A delivery's event is always there (its foreign key cascades). A delivery not
        yet marked started is by its first attempt: its workflow ran before any pass
        recorded its start (the pass that started it died), and may finish it before the
        next pass looks (which then finds nothing pending to mark)."""
        # On the session's connection: a Core statement needs none of the session's steps.
        connection = await self.session.connection()
        row = (
            await connection.execute(
                self._begin_attempt_statement(),
                {"p_event_id": event_id, "p_subscriber": subscriber, "p_generation": generation},
            )
        ).first()
        if row is None:
            return None
        id_, type_, aggregate_type, aggregate_id, seq, data, created_at, traceparent = row
        return DomainEvent(
            id=id_,
            type=type_,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            seq=seq,
            data=data,
            created_at=created_at,
            traceparent=traceparent,
        )

    async def finish(
        self,
        event_id: str,
        subscriber: str,
        status: DeliveryStatus,
        *,
        generation: int,
        error: str | None = None,
        wake_relay: bool = False,
    ) -> bool:
        """Pending at ``generation`` -> ``status`` (forward only, compare-and-set); False
        if it was not pending, or is pending at another generation: an attempt of a run
        that was terminated, ending after the sweep restarted its delivery, must not
        finish the new run's. With ``wake_relay``, a delivery that finished wakes every
        relay when this transaction commits (``notify_relay`` in the same statement: one
        round trip fewer)."""
        result = await self.session.exec(
            self._finish_statement(wake_relay),
            params={
                "p_event_id": event_id,
                "p_subscriber": subscriber,
                "p_generation": generation,
                "p_status": status,
                "p_finished_at": utcnow(),
                "p_error": error,
            },
        )
        return result.first() is not None

    async def state(self, event_id: str, subscriber: str) -> tuple[DeliveryStatus, int] | None:
        """The delivery's status and generation now (None if it is gone)."""
        result = await self.session.exec(
            select(col(EventDelivery.status), col(EventDelivery.generation)).where(
                col(EventDelivery.event_id) == event_id,
                col(EventDelivery.subscriber) == subscriber,
            )
        )
        row = result.first()
        return None if row is None else (DeliveryStatus(row[0]), row[1])

    async def complete_events(self, event_ids: Iterable[str]) -> None:
        """Set ``delivered_at`` on each event none of whose deliveries is pending or failed.

        The outbox row is locked first: two subscribers finishing the same event at once
        then take turns and the second sees the first's status, so the last sets it.
        """
        for event_id in sorted(set(event_ids)):
            held = await self.session.exec(
                self._hold_event_statement(), params={"p_event_id": event_id}
            )
            if held.first() is None:
                continue
            # A statement of its own after the lock: its snapshot (read committed) sees
            # what the transaction that held the lock committed.
            await self.session.exec(
                self._complete_event_statement(),
                params={"p_event_id": event_id, "p_delivered_at": utcnow()},
            )

    # --- one delivery's statements, built once --------------------------------------
    # Each delivery runs these (eight deliveries an order): built per call, their Python
    # construction and cache key cost more of the worker's CPU than their execution (the
    # attempt's CTE alone built a column proxy, with its foreign key and event listener,
    # per call; py-spy, issue #15). Built once with bind parameters, SQLAlchemy reuses
    # their memoised cache key and compiled form; the SQL sent is the same.

    @staticmethod
    @cache
    def _begin_attempt_statement() -> Executable:
        deliveries, outbox = _DELIVERIES.c, _OUTBOX.c
        counted = (
            update(_DELIVERIES)
            .where(
                deliveries.event_id == bindparam("p_event_id"),
                deliveries.subscriber == bindparam("p_subscriber"),
                deliveries.generation == bindparam("p_generation"),
                deliveries.status == DeliveryStatus.PENDING,
            )
            .values(
                attempts=deliveries.attempts + 1,
                started_at=func.coalesce(deliveries.started_at, func.now()),
            )
            .returning(deliveries.event_id)
            .cte("counted")
        )
        return (
            core_select(
                outbox.id,
                outbox.type,
                outbox.aggregate_type,
                outbox.aggregate_id,
                outbox.seq,
                outbox.data,
                outbox.created_at,
                outbox.traceparent,
            )
            .join(counted, counted.c.event_id == outbox.id)
            .add_cte(counted)
        )

    @staticmethod
    @cache
    def _finish_statement(wake_relay: bool) -> Update:
        deliveries = _DELIVERIES.c
        finished = (
            update(_DELIVERIES)
            .where(
                deliveries.event_id == bindparam("p_event_id"),
                deliveries.subscriber == bindparam("p_subscriber"),
                deliveries.generation == bindparam("p_generation"),
                deliveries.status == DeliveryStatus.PENDING,
            )
            .values(
                status=bindparam("p_status", type_=deliveries.status.type),
                finished_at=bindparam("p_finished_at", type_=deliveries.finished_at.type),
                last_error=bindparam("p_error", type_=deliveries.last_error.type),
            )
            .returning(deliveries.event_id)
        )
        if wake_relay:
            finished = finished.returning(func.pg_notify(CHANNEL, "delivery"))
        return finished

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

    @staticmethod
    @cache
    def _hold_event_statement() -> SelectOfScalar[str]:
        outbox = _OUTBOX.c
        # NO KEY UPDATE: it must not wait for the KEY SHARE locks that the receipts'
        # foreign keys hold on this row (the other deliveries' transactions), or two
        # subscribers finishing the same event deadlock.
        return locked(
            select(outbox.id).where(
                outbox.id == bindparam("p_event_id"), outbox.delivered_at.is_(None)
            ),
            key_share=True,
        )

    @staticmethod
    @cache
    def _complete_event_statement() -> Update:
        deliveries, outbox = _DELIVERIES.c, _OUTBOX.c
        # Counting the unfinished deliveries in the UPDATE saves the round trip of a count.
        unfinished = (
            select(deliveries.event_id)
            .where(
                deliveries.event_id == bindparam("p_event_id"),
                deliveries.status.in_(_UNFINISHED),
            )
            .exists()
        )
        return (
            update(_OUTBOX)
            .where(outbox.id == bindparam("p_event_id"), ~unfinished)
            .values(delivered_at=bindparam("p_delivered_at", type_=outbox.delivered_at.type))
        )

    async def notify_relay(self) -> None:
        """Wake every relay when this transaction commits."""
        await self.session.exec(select(func.pg_notify(CHANNEL, "delivery")))


def _this(ref: DeliveryRef) -> list[ColumnElement[bool]]:
    return [
        col(EventDelivery.event_id) == ref.event_id,
        col(EventDelivery.subscriber) == ref.subscriber,
        col(EventDelivery.generation) == ref.generation,
    ]


def _any_of(refs: Sequence[DeliveryRef]) -> ColumnElement[bool]:
    return tuple_(
        col(EventDelivery.event_id), col(EventDelivery.subscriber), col(EventDelivery.generation)
    ).in_([(r.event_id, r.subscriber, r.generation) for r in refs])


def _ref(event_id: str, subscriber: str, generation: int, event_type: str) -> DeliveryRef:
    return DeliveryRef(
        event_id=event_id, subscriber=subscriber, generation=generation, event_type=event_type
    )
