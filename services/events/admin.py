"""What staff see and do about event deliveries: list them, read one event, replay dead letters.

A dead letter is a delivery whose status is ``failed``. A replay puts it back to
``pending`` with its ``generation`` bumped (the delivery workflow's id carries it, so the
replay is a new run), ``attempts`` reset and ``started_at``/``finished_at``/``workflow_id``
cleared;
``last_error`` is kept until the delivery succeeds, so the reason stays visible. In the
same transaction ``pg_notify('shop_outbox', '')`` wakes the relay, which starts it when
no earlier event of its aggregate is pending for that subscriber.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, tuple_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked, locked_batch
from core.errors import Conflict, NotFound
from models.event_admin import BULK_REPLAY_LIMIT
from models.events import DeliveryStatus, EventDelivery
from models.outbox import OutboxEvent
from services.events.deliveries import CHANNEL
from services.events.subscriptions import Pair, SubscriptionRepository


class EventNotFound(NotFound):
    code = "event_not_found"


class EventNotFailed(Conflict):
    code = "event_not_failed"


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    subscriber: str | None = None
    event_type: str | None = None
    aggregate_id: str | None = None


@dataclass(frozen=True)
class EventWithDeliveries:
    event: OutboxEvent
    deliveries: list[EventDelivery]


@dataclass(frozen=True)
class SubscriptionState:
    """A (subscriber, event type) as the relays know it, and its pending deliveries."""

    subscriber: str
    event_type: str
    # When a relay last wrote it (None: only a worker from before relays wrote theirs).
    known_at: datetime | None
    # A relay has written it within three polls: a live worker knows it.
    live: bool
    pending: int
    oldest_pending_at: datetime | None
    # When its pending deliveries are dropped if no worker that knows it comes back.
    drop_after: datetime | None


@dataclass(frozen=True)
class BulkReplay:
    replayed: int
    events: int
    more: bool


class EventAdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def deliveries(
        self, where: DeliveryFilter, *, offset: int, limit: int
    ) -> tuple[list[tuple[EventDelivery, OutboxEvent]], int]:
        """Deliveries with their events, newest first; one event's (the same time and
        seq) by subscriber, so that pages never repeat or skip a delivery."""
        conditions = _conditions(where)
        rows = await self.session.exec(
            select(EventDelivery, OutboxEvent)
            .join(OutboxEvent, col(OutboxEvent.id) == col(EventDelivery.event_id))
            .where(*conditions)
            .order_by(
                col(EventDelivery.created_at).desc(),
                col(EventDelivery.seq).desc(),
                col(EventDelivery.event_id),
                col(EventDelivery.subscriber),
            )
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(
            select(func.count()).select_from(EventDelivery).where(*conditions)
        )
        return [(delivery, event) for delivery, event in rows.all()], int(total.one())

    async def event(self, event_id: str) -> OutboxEvent | None:
        return await self.session.get(OutboxEvent, event_id)

    async def deliveries_of(self, event_id: str, *, lock: bool = False) -> list[EventDelivery]:
        query = (
            select(EventDelivery)
            .where(EventDelivery.event_id == event_id)
            .order_by(col(EventDelivery.subscriber))
        )
        if lock:
            query = locked(query)
        return list((await self.session.exec(query)).all())

    async def back_to_pending(self, deliveries: Sequence[EventDelivery]) -> None:
        for delivery in deliveries:
            delivery.status = DeliveryStatus.PENDING
            delivery.generation += 1
            delivery.attempts = 0
            delivery.started_at = None
            delivery.finished_at = None
            delivery.workflow_id = None
            self.session.add(delivery)
        await self.session.flush()

    async def replay_failed(
        self,
        *,
        event_ids: Sequence[str] | None,
        subscriber: str | None,
        event_type: str | None,
        limit: int,
    ) -> list[tuple[str, str]]:
        """Up to ``limit`` failed deliveries matching, oldest first, back to pending; the
        (event id, subscriber) pairs moved. Rows another transaction holds are skipped."""
        conditions = _conditions(
            DeliveryFilter(
                status=DeliveryStatus.FAILED, subscriber=subscriber, event_type=event_type
            )
        )
        if event_ids is not None:
            conditions.append(col(EventDelivery.event_id).in_(event_ids))
        chosen = locked_batch(
            select(EventDelivery.event_id, EventDelivery.subscriber)
            .where(*conditions)
            .order_by(col(EventDelivery.seq), col(EventDelivery.subscriber))
            .limit(limit)
        )
        moved = await self.session.exec(
            update(EventDelivery)
            .where(
                tuple_(col(EventDelivery.event_id), col(EventDelivery.subscriber)).in_(
                    select(chosen.c.event_id, chosen.c.subscriber)
                ),
                col(EventDelivery.status) == DeliveryStatus.FAILED,
            )
            .values(
                status=DeliveryStatus.PENDING,
                generation=col(EventDelivery.generation) + 1,
                attempts=0,
                started_at=None,
                finished_at=None,
                workflow_id=None,
            )
            .returning(col(EventDelivery.event_id), col(EventDelivery.subscriber))
        )
        return [(str(event_id), str(name)) for event_id, name in moved.all()]

    async def any_failed(
        self, *, event_ids: Sequence[str] | None, subscriber: str | None, event_type: str | None
    ) -> bool:
        conditions = _conditions(
            DeliveryFilter(
                status=DeliveryStatus.FAILED, subscriber=subscriber, event_type=event_type
            )
        )
        if event_ids is not None:
            conditions.append(col(EventDelivery.event_id).in_(event_ids))
        found = await self.session.exec(select(EventDelivery.event_id).where(*conditions).limit(1))
        return found.first() is not None

    async def reopen(self, event_ids: Sequence[str]) -> None:
        """Their events are not delivered to everyone any more."""
        if event_ids:
            await self.session.exec(
                update(OutboxEvent)
                .where(col(OutboxEvent.id).in_(event_ids))
                .values(delivered_at=None)
            )

    async def pending_by_pair(self) -> dict[Pair, tuple[int, datetime]]:
        """(subscriber, event type) -> its pending deliveries and the oldest one's
        ``created_at``."""
        rows = await self.session.exec(
            select(
                col(EventDelivery.subscriber),
                col(EventDelivery.event_type),
                func.count(),
                func.min(col(EventDelivery.created_at)),
            )
            .where(col(EventDelivery.status) == DeliveryStatus.PENDING)
            .group_by(col(EventDelivery.subscriber), col(EventDelivery.event_type))
        )
        return {(name, type_): (int(n), oldest) for name, type_, n, oldest in rows.all()}

    async def now(self) -> datetime:
        """The database's clock: the one relays write ``known_at`` with."""
        return (await self.session.exec(select(func.now()))).one()

    async def notify_relay(self) -> None:
        """Wake the relay when this transaction commits (NOTIFY is sent at commit)."""
        await self.session.exec(select(func.pg_notify(CHANNEL, "")))


def _conditions(where: DeliveryFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.status is not None:
        conditions.append(col(EventDelivery.status) == where.status)
    if where.subscriber is not None:
        conditions.append(col(EventDelivery.subscriber) == where.subscriber)
    if where.event_type is not None:
        conditions.append(col(EventDelivery.event_type) == where.event_type)
    if where.aggregate_id is not None:
        conditions.append(col(EventDelivery.aggregate_id) == where.aggregate_id)
    return conditions


class EventAdminService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = EventAdminRepository(session)
        self.subscriptions = SubscriptionRepository(session)

    async def subscription_states(
        self, *, grace: timedelta, live_within: timedelta
    ) -> list[SubscriptionState]:
        """Every pair a relay has written or a delivery is pending for: those pending
        that no live worker knows wait for one, and are dropped at ``drop_after``."""
        now = await self.repository.now()
        known = {(k.subscriber, k.event_type): k.known_at for k in await self.subscriptions.all()}
        pending = await self.repository.pending_by_pair()
        states = []
        for pair in sorted(set(known) | set(pending)):
            known_at = known.get(pair)
            count, oldest = pending.get(pair, (0, None))
            live = known_at is not None and now - known_at <= live_within
            drop_after = None
            if count and not live and oldest is not None:
                drop_after = max(oldest, known_at or oldest) + grace
            states.append(
                SubscriptionState(
                    subscriber=pair[0],
                    event_type=pair[1],
                    known_at=known_at,
                    live=live,
                    pending=count,
                    oldest_pending_at=oldest,
                    drop_after=drop_after,
                )
            )
        return states

    async def deliveries(
        self, where: DeliveryFilter, *, offset: int, limit: int
    ) -> tuple[list[tuple[EventDelivery, OutboxEvent]], int]:
        return await self.repository.deliveries(where, offset=offset, limit=limit)

    async def event(self, event_id: str) -> EventWithDeliveries:
        event = await self.repository.event(event_id)
        if event is None:
            raise EventNotFound(f"no event {event_id}")
        return EventWithDeliveries(event, await self.repository.deliveries_of(event_id))

    async def replay(
        self, event_id: str, subscribers: Sequence[str] | None = None
    ) -> list[EventDelivery]:
        """The event's failed deliveries (only those of ``subscribers``, if given) go back
        to pending; 409 ``event_not_failed`` if there is none."""
        event = await self.repository.event(event_id)
        if event is None:
            raise EventNotFound(f"no event {event_id}")
        deliveries = await self.repository.deliveries_of(event_id, lock=True)
        chosen = [d for d in deliveries if subscribers is None or d.subscriber in subscribers]
        failed = [d for d in chosen if d.status == DeliveryStatus.FAILED]
        if not failed:
            statuses = {d.subscriber: str(d.status) for d in chosen}
            described = ", ".join(f"{name}: {status}" for name, status in statuses.items())
            raise EventNotFailed(
                f"event {event_id} has no failed delivery"
                + (f" ({described})" if described else " to those subscribers"),
                statuses=statuses,
            )
        await self.repository.back_to_pending(failed)
        await self.repository.reopen([event_id])
        await self.repository.notify_relay()
        return failed

    async def replay_many(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        subscriber: str | None = None,
        event_type: str | None = None,
        limit: int = BULK_REPLAY_LIMIT,
    ) -> BulkReplay:
        """Failed deliveries of ``event_ids``, or matching ``subscriber``/``event_type``,
        back to pending, at most ``limit``; ``more`` says whether any are left."""
        moved = await self.repository.replay_failed(
            event_ids=event_ids, subscriber=subscriber, event_type=event_type, limit=limit
        )
        events = sorted({event_id for event_id, _ in moved})
        if moved:
            await self.repository.reopen(events)
            await self.repository.notify_relay()
        more = await self.repository.any_failed(
            event_ids=event_ids, subscriber=subscriber, event_type=event_type
        )
        return BulkReplay(replayed=len(moved), events=len(events), more=more)
