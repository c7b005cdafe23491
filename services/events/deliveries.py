"""SQL of one delivery: an attempt, finishing it (at its generation), a new generation
of it, and its event's completion. The relay's work list (fan-out, claims, starts, the
lost-delivery sweep's pages) is ``services.events.relay_repository``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from sqlalchemy import ColumnElement, Executable, Table, Update, bindparam, func, update
from sqlalchemy import select as core_select
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from core.db import locked
from models.base import utcnow
from models.events import DeliveryStatus, EventDelivery
from services.events.subscribers import DomainEvent
from workflows.types.events import DeliveryRef

# The channel the outbox's insert trigger notifies (migration e7a1c0de0003); finishing a
# delivery notifies it too, so the relay starts the aggregate's next delivery at once.
CHANNEL = "shop_outbox"

_UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)

# The tables themselves, for the statements of one delivery (several an event, eight an
# order): Core statements, not ORM-enabled ones, which cost about twice the worker's CPU
# each (the ORM's bulk-update and bulk-insert steps, its session synchronisation, its
# loading of rows as objects) for rows no caller holds as objects (issue #15).
_DELIVERIES: Table = SQLModel.metadata.tables["event_deliveries"]
_OUTBOX: Table = SQLModel.metadata.tables["outbox"]


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
