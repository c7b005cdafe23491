"""Delivering one event to one subscriber: what ``events.deliver`` and
``events.dead_letter`` do.

``deliver`` counts the attempt in a statement that commits on its own (so a failing
attempt is still counted), then runs the handler in one transaction with its receipt, the
delivery's ``delivered`` status and, when it was the event's last delivery, the outbox
row's ``delivered_at``. A receipt already there (the effect committed, the worker died
before Temporal heard) still marks it delivered, running nothing again. Both finishing
steps notify ``shop_outbox`` so that the relay starts the aggregate's next delivery.

The handler runs in a span of the trace the event was written in (its outbox row's
``traceparent``), linked to the activity's own span: one trace holds the request, its
workflow, and every subscriber's delivery of the events they wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.asyncio import Redis

from core.db import SessionFactory, autocommit, holders, transaction
from core.telemetry import Tracing, continued_span
from models.events import DeliveryStatus
from services.events.deliveries import DeliveryRepository
from services.events.handling import handle_event_in
from services.events.metrics import EVENTS_DELIVERED, EVENTS_FAILED, count
from services.events.subscribers import DomainEvent, Subscriber
from workflows.types.events import DeliveryRef, DeliveryStep

log = logging.getLogger(__name__)


class _NotThisGeneration(Exception):
    """Rolls back an attempt's transaction: its delivery moved on without it."""


class DeliveryService:
    def __init__(
        self,
        sessions: SessionFactory,
        redis: Redis,
        subscribers: Iterable[Subscriber],
        tracing: Tracing | None = None,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._subscribers = {s.name: s for s in subscribers}
        self._tracing = tracing

    async def deliver(
        self,
        event_id: str,
        subscriber_name: str,
        generation: int,
        event_type: str | None = None,
    ) -> DeliveryStep:
        subscriber = self._subscribers.get(subscriber_name)
        if subscriber is None or (event_type is not None and not subscriber.wants(event_type)):
            return await self._leave_to_others(event_id, subscriber_name, generation, event_type)
        # One statement that commits by itself (autocommit: one round trip, not three),
        # and reads the event (immutable: the handler's transaction need not read it).
        async with autocommit(self._sessions) as session:
            event = await DeliveryRepository(session).begin_attempt(
                event_id, subscriber_name, generation
            )
        if event is None:
            return DeliveryStep.SKIPPED
        event_type = event.type
        try:
            # In the trace the event was written in (the request's, the activity's): the
            # handler's own calls (a workflow it starts, an email) join it too.
            with continued_span(
                self._tracing,
                f"deliver {event_type} to {subscriber_name}",
                event.traceparent,
                {
                    "shop.event.id": event_id,
                    "shop.event.type": str(event_type),
                    "shop.event.subscriber": subscriber_name,
                    "shop.event.generation": generation,
                },
            ):
                ran = await self._handle(subscriber, event, generation)
        except Exception as exc:
            labels = {"subscriber": subscriber_name, "type": event_type}
            await count(self._redis, EVENTS_FAILED, labels)
            log.warning(
                "event handler failed",
                extra={"event_id": event_id, "subscriber": subscriber_name, "error": repr(exc)},
            )
            raise
        if ran is None:
            outlived = await self._outlived(
                event_id, subscriber_name, generation, DeliveryStatus.DELIVERED
            )
            return DeliveryStep.SKIPPED if outlived else DeliveryStep.DELIVERED
        if ran:
            await count(
                self._redis, EVENTS_DELIVERED, {"subscriber": subscriber_name, "type": event_type}
            )
        return DeliveryStep.DELIVERED

    async def _handle(
        self, subscriber: Subscriber, event: DomainEvent, generation: int
    ) -> bool | None:
        """The handler, its receipt and the delivery's ``delivered`` status in one
        transaction; whether the handler ran (False: its receipt was there). None, all of
        it rolled back, if the delivery is no longer pending at ``generation``."""
        try:
            # Its handler may book an email in transactions of their own.
            async with holders(self._sessions), transaction(self._sessions) as session:
                ran = await handle_event_in(session, subscriber, event)
                deliveries = DeliveryRepository(session)
                if not await deliveries.finish(
                    event.id,
                    subscriber.name,
                    DeliveryStatus.DELIVERED,
                    generation=generation,
                    wake_relay=True,
                ):
                    raise _NotThisGeneration
                await deliveries.complete_events([event.id])
        except _NotThisGeneration:
            return None
        return ran

    async def _outlived(
        self, event_id: str, subscriber_name: str, generation: int, finished: DeliveryStatus
    ) -> bool:
        """Whether an attempt that could not finish its delivery as ``finished`` was
        outlived, logged: its run was terminated and the delivery restarted as a new
        generation, whose run delivers it (or it was dropped, or replayed), and this
        attempt changed nothing. False if another attempt of its own run finished it so
        (the first attempt's answer lost, say). Either way it is done: an error would be
        retried, never to succeed."""
        async with self._sessions() as session:
            now = await DeliveryRepository(session).state(event_id, subscriber_name)
        if now == (finished, generation):
            return False
        status, current = now if now is not None else (None, None)
        log.warning(
            "event delivery attempt outlived by its delivery's generation: nothing done",
            extra={
                "event_id": event_id,
                "subscriber": subscriber_name,
                "generation": generation,
                "current_generation": current,
                "status": status,
            },
        )
        return True

    async def dead_letter(
        self, event_id: str, subscriber_name: str, generation: int, error: str
    ) -> DeliveryStep:
        async with transaction(self._sessions) as session:
            deliveries = DeliveryRepository(session)
            failed = await deliveries.finish(
                event_id,
                subscriber_name,
                DeliveryStatus.FAILED,
                generation=generation,
                error=error,
                wake_relay=True,
            )
        if not failed:
            await self._outlived(event_id, subscriber_name, generation, DeliveryStatus.FAILED)
            return DeliveryStep.SKIPPED
        log.error(
            "event delivery is a dead letter",
            extra={"event_id": event_id, "subscriber": subscriber_name, "error": error},
        )
        return DeliveryStep.FAILED

    async def _leave_to_others(
        self, event_id: str, subscriber_name: str, generation: int, event_type: str | None
    ) -> DeliveryStep:
        """A delivery this worker's code cannot make (its subscriber, or the subscriber's
        taking this type, is in other workers' code: a rolling deploy): back to pending as
        a new generation, for the next pass of a relay that knows it (only those claim
        it). The relay drops it only once no worker has known it for the grace period."""
        ref = DeliveryRef(
            event_id=event_id,
            subscriber=subscriber_name,
            generation=generation,
            event_type=event_type or "",
        )
        async with transaction(self._sessions) as session:
            left = await DeliveryRepository(session).restart(ref)
        if left:
            log.warning(
                "event delivery left pending: its subscriber is not in this worker's code",
                extra={"event_id": event_id, "subscriber": subscriber_name},
            )
        return DeliveryStep.SKIPPED
