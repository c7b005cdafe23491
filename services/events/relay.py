"""The relay's pass: fan the outbox out to deliveries and start those at their line's head.

A pass runs under ``pg_advisory_xact_lock(RELAY_LOCK)`` (two transactions: fan-out, then
claims), so passes of any number of relays (one per worker process) never overlap: a
delivery is claimed by one batch only, and none is skipped.

0. **Beat.** At a pass ``beat_every`` (half the relay's poll) after the last, the relay
   writes the (subscriber, event type) pairs of its code as known now
   (``event_subscriptions``): workers of two versions side by side (a rolling deploy)
   share what each knows. At its first, it also gives its pairs the events dispatched
   since its worker process started that they lack (``services.events.catch_up``): a
   subscriber a deploy adds gets every event dispatched from the start of the first
   worker that has it, none before.
1. **Dispatch.** Outbox rows not yet dispatched, in ``seq`` order, get one
   ``event_deliveries`` row per subscriber that wants their type: in this relay's code,
   or in any relay's that has known it within ``grace`` (a worker of newer code adding a
   subscriber gets the events a worker of the older code dispatches). An event nobody
   wants is delivered at once (logged at DEBUG).
2. **Drop.** With the beat: pending deliveries older than ``grace`` whose pair no relay
   has known within ``grace`` (its subscriber was taken out of the code) are ``dropped``
   (logged), never retried. A pair only other workers know is not this relay's to drop
   while they live.
3. **Claim heads.** The pending deliveries of this relay's own pairs in no batch yet,
   each with no earlier (lower ``seq``) pending delivery of the same aggregate to the same
   subscriber, are put in batches (``DeliveryBatch``, up to ``BATCH_LIMIT`` each): the
   batch's workflow id is written on its rows, and committed. Deliveries of pairs this
   relay does not know wait, pending, for a relay that does.
4. **Start.** After that commit (no lock held), the caller's ``start`` starts each
   batch's workflow, idempotently by its id, and the started ones are marked
   ``started_at``. A batch claimed but not marked started (the start failed, or the
   relay died in between) is started again, under the same id, by the next pass: a
   delivery is never in two workflows, and a dead relay leaves nothing behind.

So a pass starts one workflow for all the events that reached it, not one per event; a
delivery held back on its line starts in a later pass, in that pass's batch.

Ordering rests on one assumption, kept by every writer of the outbox: the events of one
aggregate are published under that aggregate's row lock (the order, the product, the
user), so within an aggregate ``seq`` order is commit order. A lower ``seq`` of the same
aggregate can therefore never commit after a higher one has been dispatched.

A dead letter (``failed``) is not pending, so it does not hold back later events of its
aggregate: they proceed once it is dead. While it is being retried it does hold them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory, transaction
from services.events.catch_up import CatchUpRepository
from services.events.deliveries import DeliveryRepository
from services.events.relay_repository import RelayRepository, SweepKey
from services.events.subscribers import Subscriber
from services.events.subscriptions import Pair, SubscriptionRepository
from workflows.types.events import (
    BATCH_LIMIT,
    DeliveryBatch,
    DeliveryRef,
    StartedDelivery,
    batches_of,
)

log = logging.getLogger(__name__)

DISPATCH_BATCH = 500
START_BATCH = 500
# What the workers use by default: EVENT_SUBSCRIBER_GRACE_SECONDS, half EVENT_RELAY_POLL_SECONDS.
DEFAULT_GRACE = timedelta(minutes=10)
DEFAULT_BEAT_EVERY = timedelta(seconds=2.5)
# EVENT_SUBSCRIPTION_RETENTION_SECONDS: a pair no relay has known for this long is deleted.
DEFAULT_FORGET_AFTER = timedelta(days=7)

# Starts the batches' workflows; returns the ids of those started (or already there).
Starter = Callable[[Sequence[DeliveryBatch]], Awaitable[Sequence[str]]]
# Whether a delivery's workflow still runs.
RunningCheck = Callable[[StartedDelivery], Awaitable[bool]]
# The lost-delivery sweep: deliveries read at a time, and workflows asked about per sweep.
SWEEP_PAGE = 100
SWEEP_ASKS = 100


@dataclass(frozen=True)
class SweepResult:
    asked: int
    restarted: int
    # It reached the last delivery (the next sweep starts from the first again).
    finished: bool


@dataclass(frozen=True)
class PassResult:
    dispatched: int
    dropped: int
    started: int

    @property
    def more(self) -> bool:
        """A full batch: there may be more to do at once."""
        return self.dispatched >= DISPATCH_BATCH or self.started >= START_BATCH


class RelayService:
    def __init__(
        self,
        sessions: SessionFactory,
        subscribers: Sequence[Subscriber],
        *,
        grace: timedelta = DEFAULT_GRACE,
        beat_every: timedelta = DEFAULT_BEAT_EVERY,
        forget_after: timedelta = DEFAULT_FORGET_AFTER,
        trace_links: bool = False,
        started: float | None = None,
    ) -> None:
        """``grace``: how long a (subscriber, event type) pair no relay knows keeps its
        pending deliveries (and gets new ones). ``beat_every``: how often this relay
        writes its own pairs as known, and drops (at least every pass after that long).
        ``trace_links``: read the traceparents of the batches' events, for the spans of
        their starts (one query a pass; only worth it when spans are exported).
        ``forget_after``: a pair no relay has known for this long (well beyond ``grace``)
        is deleted when this relay beats. ``started``: when the worker process started
        (``time.monotonic()``; default now): the first beat catches its pairs up on what
        was dispatched since."""
        if forget_after < 2 * grace:
            raise ValueError("forget_after must be at least twice the grace")
        self._sessions = sessions
        self._pairs: frozenset[Pair] = frozenset(
            (s.name, str(t)) for s in subscribers for t in s.event_types
        )
        self._grace = grace
        self._forget_after = forget_after
        self._beat_every = beat_every.total_seconds()
        self._beaten: float | None = None
        self._started = time.monotonic() if started is None else started
        self._trace_links = trace_links
        self._swept_to: SweepKey | None = None

    def _beat_due(self) -> bool:
        return self._beaten is None or time.monotonic() - self._beaten >= self._beat_every

    async def run_pass(self, start: Starter) -> PassResult:
        # Two transactions, each under the lock: a delivery's workflow must not start
        # before the row it works on has committed (its activity would not see it). A
        # pass that wrote nothing in the first (most passes: woken by a finished
        # delivery, nothing new to fan out) claims in it, one transaction instead of two.
        beat = self._beat_due()
        async with transaction(self._sessions) as session:
            work = RelayRepository(session)
            subscriptions = SubscriptionRepository(session)
            await work.lock_relay()
            if beat:
                await subscriptions.beat(self._pairs)
                await subscriptions.forget(self._forget_after)
            if beat and self._beaten is None:
                await self._catch_up(session)
            events = await work.undispatched(DISPATCH_BATCH)
            subscribed = await subscriptions.subscribed(self._grace) if events else {}
            for name, event_type in self._pairs:
                subscribed.setdefault(event_type, set()).add(name)
            unwanted: list[str] = []
            for event in events:
                names = sorted(subscribed.get(str(event.type), ()))
                if not names:
                    unwanted.append(event.id)
                    log.debug("event has no subscriber", extra={"event_id": event.id})
                await work.add_deliveries(event, names)
            if events:
                await work.mark_dispatched([e.id for e in events], delivered=unwanted)
            dropped: list[DeliveryRef] = []
            if beat:
                dropped = await work.drop_pending_unknown_for(self._grace)
            for ref in dropped:
                log.warning(
                    "event delivery dropped: no worker has known its subscriber for the grace",
                    extra={"event_id": ref.event_id, "subscriber": ref.subscriber},
                )
            if dropped:
                await DeliveryRepository(session).complete_events(ref.event_id for ref in dropped)
            wrote = beat or bool(events) or bool(dropped)
            batches = [] if wrote else await self._claim(work)
        if beat:
            self._beaten = time.monotonic()
        if wrote:
            async with transaction(self._sessions) as session:
                work = RelayRepository(session)
                await work.lock_relay()
                batches = await self._claim(work)
        ids = set(await start(batches)) if batches else set()
        started = [b for b in batches if b.workflow_id in ids]
        if started:
            async with transaction(self._sessions) as session:
                await RelayRepository(session).mark_started(started)
        count = sum(len(b.deliveries) for b in started)
        return PassResult(dispatched=len(events), dropped=len(dropped), started=count)

    async def _claim(self, work: RelayRepository) -> list[DeliveryBatch]:
        """The batches to start, under the relay's lock: those a pass claimed and did not
        start, then fresh ones, claimed now."""
        owed = await work.claimed(START_BATCH // BATCH_LIMIT)
        fresh = batches_of(await work.heads(START_BATCH, self._pairs))
        for batch in fresh:
            await work.claim(batch)
        batches = [*owed, *fresh]
        if self._trace_links and batches:
            traces = await work.traceparents(
                ref.event_id for batch in batches for ref in batch.deliveries
            )
            for batch in batches:
                batch.traceparents = _distinct(
                    traces[ref.event_id] for ref in batch.deliveries if ref.event_id in traces
                )
        return batches

    async def _catch_up(self, session: AsyncSession) -> None:
        catch_up = CatchUpRepository(session)
        now = await catch_up.clock()
        # Read after the database's clock: the start is never taken late.
        since = now - timedelta(seconds=time.monotonic() - self._started)
        owed = await catch_up.owed_since(self._pairs, since)
        if owed:
            log.info(
                "events dispatched since this worker started, before its relay knew its "
                "subscribers, are owed to them",
                extra={"events": len(owed), "since": since.isoformat()},
            )

    async def restart_lost(
        self,
        age: timedelta,
        is_running: RunningCheck,
        *,
        page: int = SWEEP_PAGE,
        asks: int = SWEEP_ASKS,
    ) -> SweepResult:
        """Deliveries started more than ``age`` ago and still pending whose workflow no
        longer runs (an operator terminated it) are restarted, as the next generation.

        The sweep pages through every such delivery (``page`` at a time, by its unique
        (seq, subscriber) key), however many are alive ahead of a lost one, asking about
        each workflow once (an event's, a batch's deliveries share one). It is bounded by
        the work it does, not by the rows it reads: after ``asks`` workflows asked, it
        stops, and the next sweep goes on from there; one that reaches the end starts the
        next from the beginning. It stops likewise when a workflow cannot be asked about
        (Temporal away)."""
        running: dict[str, bool] = {}
        asked = restarted = 0
        while True:
            async with self._sessions() as session:
                found = await RelayRepository(session).started_before(
                    age, page, after=self._swept_to
                )
            for delivery in found:
                known = running.get(delivery.workflow_id) if delivery.workflow_id else None
                if known is None:
                    if asked >= asks:
                        return SweepResult(asked=asked, restarted=restarted, finished=False)
                    try:
                        known = await is_running(delivery)
                    except Exception as exc:
                        log.warning(
                            "cannot check a delivery's workflow", extra={"error": repr(exc)}
                        )
                        return SweepResult(asked=asked, restarted=restarted, finished=False)
                    asked += 1
                    if delivery.workflow_id:
                        running[delivery.workflow_id] = known
                if not known and await self.restart(delivery):
                    restarted += 1
                self._swept_to = (delivery.seq, delivery.subscriber)
            if len(found) < page:
                self._swept_to = None
                return SweepResult(asked=asked, restarted=restarted, finished=True)

    async def restart(self, ref: DeliveryRef) -> bool:
        """A new generation of ``ref``, to be started by the next pass (its workflow is
        gone, e.g. terminated by an operator)."""
        async with transaction(self._sessions) as session:
            restarted = await DeliveryRepository(session).restart(ref)
        if restarted:
            log.warning(
                "event delivery restarted: its workflow no longer runs",
                extra={"event_id": ref.event_id, "subscriber": ref.subscriber},
            )
        return restarted


def _distinct(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
