"""The outbox relay, live: real PostgreSQL, the Temporal dev server, the relay loop and
the delivery workflow on the events queue, with test subscribers whose handlers write a
row per committed effect (so a doubled effect would show)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from functools import partial

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from sqlmodel import select as model_select
from temporalio.client import Client

from core.db import create_session_factory
from core.errors import ValidationFailed
from core.events import EventType
from core.settings import Settings
from core.shared_metrics import SharedCounters
from models.events import DeliveryStatus, EventDelivery
from services.events.relay import RelayService
from services.events.subscribers import DomainEvent
from temporal.client import connect
from temporal.clients.events import batch_summary
from tests.events.relay_support import (
    Recorder,
    all_finished,
    current_details,
    deliveries,
    effects,
    effects_table,
    eventually,
    outbox,
    publish_probes,
    quick,
    relay,
    run_id,
)
from tests.factories import staff_headers
from workflows.types.events import DeliveryBatch, DeliveryRef


@pytest.fixture(scope="module", autouse=True)
async def _effects(engine: AsyncEngine) -> AsyncIterator[None]:
    async with effects_table(engine):
        yield


def _counted(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], int], name: str, sub: str
) -> int:
    labels = (("subscriber", sub), ("type", EventType.RELAY_PROBE.value))
    return values.get((name, labels), 0)


async def test_an_event_reaches_every_matching_subscriber_and_is_delivered_when_all_have_it(
    settings: Settings, temporal_client: Client, engine: AsyncEngine, redis: Redis
) -> None:
    run = run_id()
    gate = asyncio.Event()

    async def held(event: DomainEvent, attempt: int) -> None:
        await gate.wait()

    fast = Recorder(f"fast_{run}", run)
    slow = Recorder(f"slow_{run}", run, behaviour=held)
    other = Recorder(f"other_{run}", run, types=frozenset({EventType.USER_DELETED}))
    sessions = create_session_factory(engine)
    subscribers = [fast.subscriber, slow.subscriber, other.subscriber]
    # The slow handler is held while the test asks the workflow (a describe and a query,
    # each a round through the worker, seconds apiece on a loaded machine): its timeout
    # must outlast them, or its first attempt times out and it is delivered at attempt 2.
    held_long = quick(settings, event_handler_timeout_seconds=120.0)
    async with relay(held_long, temporal_client, subscribers):
        [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)
        await eventually(lambda: _has_effect(engine, event, fast.name))
        [row] = await outbox(engine, [event])
        assert row.dispatched_at is not None
        assert row.delivered_at is None
        # One workflow delivers both: the fast one is done, the slow one still runs in it.
        started = {d.subscriber: d.workflow_id for d in await deliveries(engine, [event])}
        shared = started[fast.name]
        assert shared is not None
        assert started[slow.name] == shared
        handle = temporal_client.get_workflow_handle(shared)
        description = await handle.describe()
        # The Temporal UI's line is the batch's events and subscribers. Other tests' events
        # (the shared database) dispatched in the same pass to these subscribers (another
        # run's probes, user.deleted to ``other``) can share the workflow: then they are in
        # it too, in the batch's order.
        batch = await _batch_of(engine, shared)
        assert await description.static_summary() == batch_summary(batch)
        assert [(r.subscriber, r.event_type) for r in batch if r.event_id == event] == [
            (fast.name, EventType.RELAY_PROBE),
            (slow.name, EventType.RELAY_PROBE),
        ]
        if len(batch) == 2:
            assert batch_summary(batch) == (
                f"system.relay_probe {event} to {fast.name}, {slow.name}"
            )
        details = await current_details(handle)
        # A batch of several events (above) names each delivery's event too, and may still
        # be delivering another event's.
        one_event = len({r.event_id for r in batch}) == 1
        label = slow.name if one_event else f"{slow.name} of {event}"
        first = details.split("\n", 1)[0]
        assert first.startswith("delivering to "), details
        assert label in first.removeprefix("delivering to ").split(", "), details
        assert f"{fast.name if one_event else f'{fast.name} of {event}'} delivered" in details
        gate.set()
        await eventually(lambda: all_finished(engine, [event]))
        result = await handle.result()
    assert set(result["outcomes"][event]) == {fast.name, slow.name}
    found = await effects(engine, [event])
    assert sorted(e.subscriber for e in found) == sorted([fast.name, slow.name])
    rows = await deliveries(engine, [event])
    assert {(d.subscriber, d.status, d.attempts) for d in rows} == {
        (fast.name, DeliveryStatus.DELIVERED, 1),
        (slow.name, DeliveryStatus.DELIVERED, 1),
    }
    [done] = await outbox(engine, [event])
    assert done.delivered_at is not None
    assert all(d.finished_at is not None and d.finished_at <= done.delivered_at for d in rows)
    counters = await SharedCounters(redis).read()
    assert _counted(counters, "shop_events_delivered", fast.name) == 1
    assert _counted(counters, "shop_events_delivered", slow.name) == 1


async def _batch_of(engine: AsyncEngine, workflow_id: str) -> list[DeliveryRef]:
    """The deliveries one batch workflow was started with, in the relay's order."""
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            model_select(EventDelivery)
            .where(col(EventDelivery.workflow_id) == workflow_id)
            .order_by(col(EventDelivery.seq), col(EventDelivery.subscriber))
        )
        return [
            DeliveryRef(
                event_id=d.event_id,
                subscriber=d.subscriber,
                generation=d.generation,
                event_type=d.event_type,
            )
            for d in rows.all()
        ]


async def _has_effect(engine: AsyncEngine, event_id: str, subscriber: str) -> bool:
    return any(e.subscriber == subscriber for e in await effects(engine, [event_id]))


async def test_a_failing_first_event_holds_back_its_aggregate_for_that_subscriber_only(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    held, free = f"held-{run}", f"free-{run}"

    async def fails_twice_on_the_first(event: DomainEvent, attempt: int) -> None:
        if event.aggregate_id == held and event.data["n"] == 0 and attempt <= 2:
            raise RuntimeError(f"attempt {attempt} fails")

    flaky = Recorder(f"flaky_{run}", run, behaviour=fails_twice_on_the_first)
    steady = Recorder(f"steady_{run}", run)
    sessions = create_session_factory(engine)
    # Backoff of a second: the held-back events would have overtaken by then.
    slow_retries = quick(
        settings, event_retry_initial_seconds=1.0, event_retry_max_interval_seconds=1.0
    )
    async with relay(slow_retries, temporal_client, [flaky.subscriber, steady.subscriber]):
        ids = await publish_probes(sessions, run, [held, free], 3)
        await eventually(lambda: all_finished(engine, ids), within=40)
    found = await effects(engine, ids)
    flaky_effects = [e for e in found if e.subscriber == flaky.name]
    steady_effects = [e for e in found if e.subscriber == steady.name]
    held_seqs = [e.seq for e in flaky_effects if e.aggregate_id == held]
    assert held_seqs == sorted(held_seqs)
    assert len(held_seqs) == 3
    assert flaky_effects[0].aggregate_id == free  # the other aggregate went first
    first_done = found.index(next(e for e in flaky_effects if e.event_id == ids[0]))
    later_free = [found.index(e) for e in flaky_effects if e.aggregate_id == free]
    assert max(later_free) < first_done, "the other aggregate was held back"
    steady_held = [found.index(e) for e in steady_effects if e.aggregate_id == held]
    assert max(steady_held) < first_done, "the other subscriber was held back"
    assert len(steady_effects) == 6
    assert flaky.attempts[ids[0]] == 3
    rows = await deliveries(engine, ids)
    attempts = {(d.subscriber, d.event_id): d.attempts for d in rows}
    assert attempts[(flaky.name, ids[0])] == 3
    assert sum(attempts.values()) == 12 + 2
    # The first event's two deliveries started in one pass, in one workflow; the held
    # line's later events reached ``flaky`` in later passes, in workflows of their own.
    workflows = {(d.subscriber, d.event_id): d.workflow_id for d in rows}
    assert workflows[(flaky.name, ids[0])] == workflows[(steady.name, ids[0])]
    for event in ids[2::2]:  # the held aggregate's second and third events
        assert workflows[(flaky.name, event)] != workflows[(steady.name, event)]


async def test_a_business_error_is_a_dead_letter_at_once_a_transient_one_after_retries(
    settings: Settings, temporal_client: Client, engine: AsyncEngine, redis: Redis
) -> None:
    run = run_id()
    refused, down = f"refused-{run}", f"down-{run}"

    async def fails(event: DomainEvent, attempt: int) -> None:
        if event.aggregate_id == refused and event.data["n"] == 0:
            raise ValidationFailed("the probe is malformed", code="bad_probe")
        if event.aggregate_id == down:
            raise RuntimeError("the CRM is down")

    handler = Recorder(f"dead_{run}", run, behaviour=fails)
    sessions = create_session_factory(engine)
    async with relay(quick(settings), temporal_client, [handler.subscriber]):
        ids = await publish_probes(sessions, run, [refused, down], 2)
        bad, unavailable, after_bad, unavailable_too = ids

        async def settled() -> bool:
            rows = await deliveries(engine, ids)
            return all(d.status != DeliveryStatus.PENDING for d in rows) and len(rows) == 4

        await eventually(settled, within=40)
    rows = {d.event_id: d for d in await deliveries(engine, ids)}
    assert (rows[bad].status, rows[bad].attempts) == (DeliveryStatus.FAILED, 1)
    assert rows[bad].last_error == "bad_probe: the probe is malformed"
    assert rows[bad].finished_at is not None
    for event in (unavailable, unavailable_too):
        assert (rows[event].status, rows[event].attempts) == (DeliveryStatus.FAILED, 3)
        assert rows[event].last_error == "RuntimeError: the CRM is down"
    # A dead letter does not hold back its aggregate's later events.
    assert rows[after_bad].status == DeliveryStatus.DELIVERED
    assert [e.event_id for e in await effects(engine, ids)] == [after_bad]
    delivered = {r.id: r.delivered_at for r in await outbox(engine, ids)}
    assert delivered[after_bad] is not None
    assert [delivered[e] for e in (bad, unavailable, unavailable_too)] == [None, None, None]
    counters = await SharedCounters(redis).read()
    assert _counted(counters, "shop_events_failed", handler.name) == 1 + 3 + 3


async def test_a_commit_wakes_the_relay_long_before_its_poll(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    handler = Recorder(f"woken_{run}", run)
    sessions = create_session_factory(engine)
    async with relay(
        quick(settings, event_relay_poll_seconds=60.0), temporal_client, [handler.subscriber]
    ):
        await asyncio.sleep(1.5)  # the relay's first pass is over; it waits for 60 s now
        lags = []
        for _ in range(3):
            [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)
            lags.append(await eventually(partial(_has_effect, engine, event, handler.name)))
    # Woken, not polled: each well inside the 60 s poll. (A bound of 3 s measured the
    # machine: 3.8 s once, on a CI run under load.)
    assert max(lags) < 20.0, lags


async def test_a_delivery_whose_workflow_was_terminated_is_started_afresh(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()

    async def hangs_the_first_time(event: DomainEvent, attempt: int) -> None:
        if attempt == 1:
            await asyncio.sleep(3600)

    handler = Recorder(f"stuck_{run}", run, behaviour=hangs_the_first_time)
    sessions = create_session_factory(engine)
    sweeping = quick(settings, event_restart_after_seconds=1.0)
    async with relay(sweeping, temporal_client, [handler.subscriber]):
        [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)
        await eventually(lambda: _attempted(handler, event))
        [started] = await deliveries(engine, [event])
        assert started.workflow_id is not None
        await temporal_client.get_workflow_handle(started.workflow_id).terminate("operator")
        await eventually(lambda: all_finished(engine, [event]), within=20)
    [row] = await deliveries(engine, [event])
    assert (row.status, row.generation) == (DeliveryStatus.DELIVERED, 1)
    assert [e.event_id for e in await effects(engine, [event])] == [event]
    assert row.started_at is not None
    assert row.finished_at is not None
    assert row.finished_at - row.started_at < timedelta(seconds=20)


async def _attempted(handler: Recorder, event_id: str) -> bool:
    return event_id in handler.attempts


async def _attempts(handler: Recorder, event_id: str, n: int) -> bool:
    return handler.attempts.get(event_id, 0) >= n


async def test_a_restarted_delivery_past_its_attempts_is_not_left_pending(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()

    async def down_and_stuck_at_the_last(event: DomainEvent, attempt: int) -> None:
        if attempt == 3:  # the budget's last attempt hangs: the operator terminates it
            await asyncio.sleep(3600)
        raise RuntimeError("the CRM is down")

    handler = Recorder(f"restarted_{run}", run, behaviour=down_and_stuck_at_the_last)
    sessions = create_session_factory(engine)
    sweeping = quick(settings, event_max_attempts=3, event_restart_after_seconds=1.0)
    async with relay(sweeping, temporal_client, [handler.subscriber]):
        [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)
        await eventually(lambda: _attempts(handler, event, 3))
        [started] = await deliveries(engine, [event])
        assert started.workflow_id is not None
        await temporal_client.get_workflow_handle(started.workflow_id).terminate("operator")

        async def finished() -> bool:
            [row] = await deliveries(engine, [event])
            return row.status != DeliveryStatus.PENDING

        await eventually(finished, within=30)
    # Restarted as generation 1 with a fresh budget of 3, spent, then a dead letter: not
    # 6 attempts against a limit of 3 (the lost run's carried over), pending meanwhile.
    [row] = await deliveries(engine, [event])
    assert (row.status, row.generation, row.attempts) == (DeliveryStatus.FAILED, 1, 3)
    assert row.last_error == "RuntimeError: the CRM is down"
    assert handler.attempts[event] == 6


async def test_an_event_no_subscriber_wants_is_delivered_at_once(engine: AsyncEngine) -> None:
    run = run_id()
    sessions = create_session_factory(engine)
    ids = await publish_probes(sessions, run, [f"agg-{run}"], 1)
    wants_other_things = Recorder(f"picky_{run}", run, types=frozenset({EventType.USER_DELETED}))

    async def start_nothing(batches: Sequence[DeliveryBatch]) -> list[str]:
        return []

    await RelayService(sessions, [wants_other_things.subscriber]).run_pass(start_nothing)
    [row] = await outbox(engine, ids)
    assert row.dispatched_at is not None
    assert row.delivered_at == row.dispatched_at
    assert await deliveries(engine, ids) == []


async def test_two_relays_start_every_delivery_once_and_skip_none(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    aggregates = [f"agg-{run}-{n}" for n in range(30)]
    handler = Recorder(f"twice_{run}", run)
    sessions = create_session_factory(engine)
    fast = quick(settings)
    # Another process's worker has a connection of its own (the SDK refuses two workers
    # of one queue on one client).
    other_process = await connect(fast)
    async with (
        relay(fast, temporal_client, [handler.subscriber]),
        relay(fast, other_process, [handler.subscriber]),
    ):
        ids = await publish_probes(sessions, run, aggregates, 10)
        await eventually(lambda: all_finished(engine, ids), within=120, poll=0.5)
    found = await effects(engine, ids)
    assert sorted(e.event_id for e in found) == sorted(ids)  # each once, none missing
    for aggregate in aggregates:
        seqs = [e.seq for e in found if e.aggregate_id == aggregate]
        assert seqs == sorted(seqs)
        assert len(seqs) == 10
    rows = await deliveries(engine, ids)
    assert {(d.status, d.attempts, d.generation) for d in rows} == {
        (DeliveryStatus.DELIVERED, 1, 0)
    }
    assert max(handler.attempts.values()) == 1


async def test_the_relay_reconnects_when_its_listening_connection_is_killed(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    handler = Recorder(f"reconnect_{run}", run)
    sessions = create_session_factory(engine)
    async with relay(
        quick(settings, event_relay_poll_seconds=60.0), temporal_client, [handler.subscriber]
    ):
        await asyncio.sleep(1.0)
        async with engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        assert killed == 1
        await asyncio.sleep(1.0)  # a reconnect, not the 60 s poll, must pick this up
        [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)
        lag = await eventually(partial(_has_effect, engine, event, handler.name))
    assert lag < 5.0


async def test_a_dead_letter_listed_and_replayed_through_the_api_is_delivered_again(
    settings: Settings, temporal_client: Client, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    run = run_id()
    fixed = asyncio.Event()

    async def refuses_until_fixed(event: DomainEvent, attempt: int) -> None:
        if not fixed.is_set():
            raise ValidationFailed("not yet", code="not_yet")

    handler = Recorder(f"replayed_{run}", run, behaviour=refuses_until_fixed)
    sessions = create_session_factory(engine)
    async with relay(quick(settings), temporal_client, [handler.subscriber]):
        [event] = await publish_probes(sessions, run, [f"agg-{run}"], 1)

        async def dead() -> bool:
            return [d.status for d in await deliveries(engine, [event])] == ["failed"]

        await eventually(dead)
        staff = await staff_headers(client, engine)
        listed = await client.get(
            "/api/admin/events",
            params={"status": "failed", "subscriber": handler.name},
            headers=staff,
        )
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert (item["eventId"], item["lastError"]) == (event, "not_yet: not yet")
        fixed.set()  # the cause is fixed; staff replay it
        replayed = await client.post(f"/api/admin/events/{event}/replay", headers=staff)
        assert replayed.status_code == 202, replayed.text
        await eventually(lambda: all_finished(engine, [event]))
    [row] = await deliveries(engine, [event])
    assert (row.status, row.generation, row.attempts) == (DeliveryStatus.DELIVERED, 1, 1)
    assert row.last_error is None
    assert [e.event_id for e in await effects(engine, [event])] == [event]
