"""What the relay tests share: an effects table handlers write to (so a doubled effect
shows), recording subscribers, publishing probe events, and waiting on deliveries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from sqlmodel import select as model_select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from models.events import EventDelivery
from models.outbox import OutboxEvent
from services.events.subscribers import DomainEvent, Subscriber
from temporal.queues import TaskQueue
from workers.main import running_workers, worker_deps

# Handlers' database effect: one row per time a handler's transaction committed.
EFFECTS = Table(
    "relay_test_effects",
    MetaData(),
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("subscriber", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), server_default=func.clock_timestamp()),
)


def quick(settings: Settings, **overrides: Any) -> Settings:
    """Settings whose retries and safety nets take fractions of a second."""
    values: dict[str, Any] = {
        "event_retry_initial_seconds": 0.1,
        "event_retry_max_interval_seconds": 0.2,
        "event_max_attempts": 3,
        "event_relay_poll_seconds": 1.0,
        "event_handler_timeout_seconds": 10.0,
    }
    return settings.model_copy(update=values | overrides)


def run_id() -> str:
    return uuid4().hex[:8]


async def record_effect(session: AsyncSession, subscriber: str, event: DomainEvent) -> None:
    await session.exec(
        insert(EFFECTS).values(
            subscriber=subscriber,
            event_id=event.id,
            aggregate_id=event.aggregate_id,
            seq=event.seq,
        )
    )


Behaviour = Callable[[DomainEvent, int], Awaitable[None]]  # (event, attempt) -> None


@dataclass
class Recorder:
    """A subscriber of this run's events: records its effect, after ``behaviour`` (which
    may raise) has seen the event and its attempt number. Other runs' events pass by."""

    name: str
    run: str
    types: frozenset[EventType] = frozenset({EventType.RELAY_PROBE})
    behaviour: Behaviour | None = None
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def subscriber(self) -> Subscriber:
        return Subscriber(self.name, self.types, self.handle)

    async def handle(self, event: DomainEvent, session: AsyncSession) -> None:
        if event.data.get("run") != self.run:
            return
        attempt = self.attempts[event.id] = self.attempts.get(event.id, 0) + 1
        if self.behaviour is not None:
            await self.behaviour(event, attempt)
        await record_effect(session, self.name, event)


async def publish_probes(
    sessions: SessionFactory, run: str, aggregates: Sequence[str], per_aggregate: int
) -> list[str]:
    """``per_aggregate`` events for each aggregate, interleaved, one commit each."""
    ids = []
    for n in range(per_aggregate):
        for aggregate in aggregates:
            async with transaction(sessions) as session:
                row = await publish(session, EventType.RELAY_PROBE, aggregate, {"run": run, "n": n})
                ids.append(row.id)
    return ids


@dataclass(frozen=True)
class Effect:
    subscriber: str
    event_id: str
    aggregate_id: str
    seq: int


async def effects(engine: AsyncEngine, event_ids: Sequence[str]) -> list[Effect]:
    """Effects of these events, in the order they committed."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(EFFECTS.c.subscriber, EFFECTS.c.event_id, EFFECTS.c.aggregate_id, EFFECTS.c.seq)
            .where(EFFECTS.c.event_id.in_(event_ids))
            .order_by(EFFECTS.c.id)
        )
        return [Effect(*row) for row in rows.all()]


async def deliveries(engine: AsyncEngine, event_ids: Sequence[str]) -> list[EventDelivery]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            model_select(EventDelivery)
            .where(col(EventDelivery.event_id).in_(event_ids))
            .order_by(col(EventDelivery.seq), col(EventDelivery.subscriber))
        )
        return list(rows.all())


async def outbox(engine: AsyncEngine, event_ids: Sequence[str]) -> list[OutboxEvent]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            model_select(OutboxEvent)
            .where(col(OutboxEvent.id).in_(event_ids))
            .order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, poll: float = 0.1
) -> float:
    """Wait until ``check()`` holds; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(poll)
    return time.monotonic() - started


async def all_finished(engine: AsyncEngine, event_ids: Sequence[str]) -> bool:
    rows = await outbox(engine, event_ids)
    return len(rows) == len(event_ids) and all(r.delivered_at is not None for r in rows)


@asynccontextmanager
async def relay(
    settings: Settings, client: Client, subscribers: Sequence[Subscriber]
) -> AsyncIterator[None]:
    """A worker process's events queue and relay, in the test's loop."""
    async with (
        worker_deps(settings, client) as deps,
        running_workers(client, deps, [TaskQueue.EVENTS], subscribers=subscribers),
    ):
        yield


@asynccontextmanager
async def effects_table(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.run_sync(EFFECTS.create, checkfirst=True)
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(EFFECTS.drop, checkfirst=True)


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)
