"""Workers of two versions side by side (a rolling deploy), live: real PostgreSQL, the
Temporal dev server, relays with different subscriber sets. A subscriber only the newer
code has is delivered by the newer workers, whichever relay fans its events out, and
never dropped by the older ones; one no live worker has known for the grace is dropped."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.db import SessionFactory, create_session_factory, transaction
from core.events import EventType
from core.outbox import publish
from core.settings import Settings
from models.events import DeliveryStatus
from services.events.delivery import DeliveryService
from services.events.relay import RelayService
from services.events.subscriptions import SubscriptionRepository
from temporal.client import connect
from tests.events.relay_support import (
    Recorder,
    all_finished,
    deliveries,
    effects,
    effects_table,
    eventually,
    publish_probes,
    quick,
    relay,
    run_id,
)
from workflows.types.events import DeliveryBatch


@pytest.fixture(scope="module", autouse=True)
async def _effects(engine: AsyncEngine) -> AsyncIterator[None]:
    async with effects_table(engine):
        yield


async def _start_nothing(batches: Sequence[DeliveryBatch]) -> list[str]:
    return []


async def test_a_subscriber_only_the_newer_workers_know_gets_every_event_and_none_is_dropped(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    kept = Recorder(f"kept_{run}", run)
    added = Recorder(f"added_{run}", run)
    sessions = create_session_factory(engine)
    # The old code's relay drops at every beat; its grace is long past the test's pace.
    fast = quick(settings, event_subscriber_grace_seconds=60.0)
    old = [kept.subscriber]
    new = [kept.subscriber, added.subscriber]
    aggregates = [f"agg-{run}-{n}" for n in range(4)]
    old_process = await connect(fast)
    ids: list[str] = []
    async with relay(fast, old_process, old):
        # The first worker of the new code joins (a subscriber gets the events dispatched
        # once a relay knows it), events come and go through both...
        async with relay(fast, temporal_client, new):
            await eventually(lambda: _known(sessions, added.name))
            ids += await publish_probes(sessions, run, aggregates, 3)
            await eventually(lambda: all_finished(engine, ids), within=60)
        # ...it is replaced: meanwhile only the old code's relay fans events out...
        ids += await publish_probes(sessions, run, aggregates, 3)
        await eventually(lambda: _dispatched(engine, ids))
        owed = [d for d in await deliveries(engine, ids[12:]) if d.subscriber == added.name]
        assert len(owed) == 12  # fanned out to the subscriber the old code lacks...
        # ...neither started by the old code's relay nor dropped: pending, for a relay
        # that knows it.
        assert {(d.status, d.workflow_id) for d in owed} == {(DeliveryStatus.PENDING, None)}
        # ...and its replacement delivers what the new subscriber was owed.
        async with relay(fast, temporal_client, new):
            ids += await publish_probes(sessions, run, aggregates, 2)
            await eventually(lambda: all_finished(engine, ids), within=60)
    rows = await deliveries(engine, ids)
    assert {(d.subscriber, d.status) for d in rows} == {
        (kept.name, DeliveryStatus.DELIVERED),
        (added.name, DeliveryStatus.DELIVERED),
    }
    assert len(rows) == 2 * len(ids)
    found = await effects(engine, ids)
    for name in (kept.name, added.name):
        mine = [e for e in found if e.subscriber == name]
        assert sorted(e.event_id for e in mine) == sorted(ids)  # each once, none lost
        for aggregate in aggregates:
            seqs = [e.seq for e in mine if e.aggregate_id == aggregate]
            assert seqs == sorted(seqs)


async def _known(sessions: SessionFactory, name: str) -> bool:
    async with sessions() as session:
        known = await SubscriptionRepository(session).all()
    return any(k.subscriber == name for k in known)


async def _dispatched(engine: AsyncEngine, event_ids: Sequence[str]) -> bool:
    rows = await deliveries(engine, event_ids)
    return {d.event_id for d in rows} == set(event_ids)


async def test_a_delivery_attempted_on_a_worker_that_does_not_know_it_waits_for_one_that_does(
    settings: Settings, temporal_client: Client, engine: AsyncEngine, redis: Redis
) -> None:
    run = run_id()
    kept = Recorder(f"kept_{run}", run)
    added = Recorder(f"added_{run}", run)
    sessions = create_session_factory(engine)
    [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)
    # A relay of the new code fans it out to both...
    await RelayService(sessions, [kept.subscriber, added.subscriber]).run_pass(_start_nothing)
    # ...and its batch's workflow task lands on a worker of the old code.
    old_worker = DeliveryService(sessions, redis, [kept.subscriber])
    rows = {d.subscriber: d for d in await deliveries(engine, [event])}
    step = await old_worker.deliver(event, added.name, rows[added.name].generation)
    assert step == "skipped"
    [left] = [d for d in await deliveries(engine, [event]) if d.subscriber == added.name]
    assert (left.status, left.generation, left.attempts) == (DeliveryStatus.PENDING, 1, 0)
    assert (left.started_at, left.workflow_id, left.finished_at) == (None, None, None)
    # The old code's relay leaves it to others; the new code's delivers it.
    fast = quick(settings, event_subscriber_grace_seconds=60.0)
    await RelayService(sessions, [kept.subscriber]).run_pass(_start_nothing)
    [still] = [d for d in await deliveries(engine, [event]) if d.subscriber == added.name]
    assert (still.status, still.workflow_id) == (DeliveryStatus.PENDING, None)
    async with relay(fast, temporal_client, [kept.subscriber, added.subscriber]):
        await eventually(lambda: all_finished(engine, [event]))
    assert sorted(e.subscriber for e in await effects(engine, [event])) == sorted(
        [kept.name, added.name]
    )
    rows = {d.subscriber: d for d in await deliveries(engine, [event])}
    assert rows[added.name].status == DeliveryStatus.DELIVERED


async def test_an_event_type_only_the_newer_code_subscribes_to_is_delivered_by_it(
    settings: Settings, temporal_client: Client, engine: AsyncEngine, redis: Redis
) -> None:
    run = run_id()
    name = f"widened_{run}"
    before = Recorder(name, run)  # the old code: relay probes only
    after = Recorder(name, run, types=frozenset({EventType.RELAY_PROBE, EventType.USER_DELETED}))
    sessions = create_session_factory(engine)
    [first] = await _publish(sessions, EventType.USER_DELETED, [f"user_{run}_0"], run)
    await RelayService(sessions, [after.subscriber]).run_pass(_start_nothing)
    # An attempt on a worker of the old code, whose subscriber does not take the type:
    # its handler is not run; the delivery waits for a worker that takes it.
    old_worker = DeliveryService(sessions, redis, [before.subscriber])
    step = await old_worker.deliver(first, name, 0, EventType.USER_DELETED.value)
    assert step == "skipped"
    [left] = await deliveries(engine, [first])
    assert (left.status, left.generation) == (DeliveryStatus.PENDING, 1)
    assert before.attempts == {}
    fast = quick(settings, event_subscriber_grace_seconds=60.0)
    old_process = await connect(fast)
    # The pair is known (the pass above wrote it): whichever relay fans them out.
    async with (
        relay(fast, old_process, [before.subscriber]),
        relay(fast, temporal_client, [after.subscriber]),
    ):
        users = [f"user_{run}_{n}" for n in range(1, 7)]
        ids = [first, *await _publish(sessions, EventType.USER_DELETED, users, run)]
        await eventually(lambda: all_finished(engine, ids), within=60)
    rows = await deliveries(engine, ids)
    assert {(d.subscriber, d.status) for d in rows} == {(name, DeliveryStatus.DELIVERED)}
    assert sorted(e.event_id for e in await effects(engine, ids)) == sorted(ids)
    assert before.attempts == {}


async def _publish(
    sessions: SessionFactory, type: EventType, aggregates: Sequence[str], run: str
) -> list[str]:
    ids = []
    for aggregate in aggregates:
        async with transaction(sessions) as session:
            ids.append((await publish(session, type, aggregate, {"run": run})).id)
    return ids


async def test_a_subscriber_no_worker_has_known_for_the_grace_is_dropped_and_logged(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = run_id()
    gone = Recorder(f"gone_{run}", run)
    kept = Recorder(f"kept_{run}", run)
    sessions = create_session_factory(engine)
    ids = await publish_probes(sessions, run, [f"agg-{run}"], 2)
    # The last worker that knew ``gone`` fanned them out and stopped...
    await RelayService(sessions, [gone.subscriber, kept.subscriber]).run_pass(_start_nothing)
    # ...within the grace, the new code delivers its own and leaves ``gone``'s pending...
    async with relay(quick(settings), temporal_client, [kept.subscriber]):
        await eventually(lambda: _delivered_to(engine, ids, kept.name))
    assert {d.status for d in await deliveries(engine, ids) if d.subscriber == gone.name} == {
        DeliveryStatus.PENDING
    }
    # ...and once no worker has known it for the grace, they are dropped.
    short = quick(settings, event_subscriber_grace_seconds=3.0)
    with caplog.at_level(logging.WARNING, logger="services.events.relay"):
        async with relay(short, temporal_client, [kept.subscriber]):
            await eventually(lambda: all_finished(engine, ids))
    rows = {(d.subscriber, d.event_id): d for d in await deliveries(engine, ids)}
    for event in ids:
        dropped = rows[(gone.name, event)]
        assert (dropped.status, dropped.attempts) == (DeliveryStatus.DROPPED, 0)
        assert dropped.finished_at is not None
        assert rows[(kept.name, event)].status == DeliveryStatus.DELIVERED
    assert [e.subscriber for e in await effects(engine, ids)] == [kept.name, kept.name]
    logged = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert {getattr(r, "event_id", None) for r in logged} >= set(ids)


async def _delivered_to(engine: AsyncEngine, event_ids: Sequence[str], name: str) -> bool:
    rows = [d for d in await deliveries(engine, event_ids) if d.subscriber == name]
    return len(rows) == len(event_ids) and all(d.status == DeliveryStatus.DELIVERED for d in rows)
