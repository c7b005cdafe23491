"""A worker SIGKILLed in the middle of deliveries loses no event and doubles no effect.

Two worker processes (each with its relay) deliver 200 events over 20 aggregates to a
handler that writes an effect row per committed run; both are SIGKILLed mid-way and a
fresh one started. Every event's effect is there exactly once, in order per aggregate.
The same in a rolling deploy: the only worker of the new code (with a subscriber the old
code lacks) is SIGKILLed mid-delivery beside a worker of the old code, and replaced.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from core.db import SessionFactory, create_session_factory
from core.settings import Settings
from models.events import DeliveryStatus
from models.outbox import OutboxEvent
from services.events.subscriptions import SubscriptionRepository
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
from tests.processes import start_module

Start = Callable[[], subprocess.Popen[bytes]]


@pytest.fixture(scope="module", autouse=True)
async def _effects(engine: AsyncEngine) -> AsyncIterator[None]:
    async with effects_table(engine):
        yield


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.resolved_database_url or "",
        REDIS_URL=settings.redis_url or "",
        TEMPORAL_ADDRESS=settings.temporal_address or "",
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        SHOP_ENV="test",
        LOG_LEVEL="WARNING",
        EVENT_RETRY_INITIAL_SECONDS="0.1",
        EVENT_RETRY_MAX_INTERVAL_SECONDS="0.5",
        EVENT_RELAY_POLL_SECONDS="1",
    )
    return env


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Callable[[str, str], Start]]:
    started: list[subprocess.Popen[bytes]] = []

    def for_run(run: str, subscriber: str) -> Start:
        def start() -> subprocess.Popen[bytes]:
            log = tmp_path / f"worker-{len(started)}.log"
            args = [run, subscriber]
            proc = start_module("tests.events.relay_worker", args, log, "ready", _env(settings))
            started.append(proc)
            return proc

        return start

    yield for_run
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_a_worker_killed_mid_delivery_loses_nothing_and_doubles_nothing(
    engine: AsyncEngine, workers: Callable[[str, str], Start]
) -> None:
    run = run_id()
    subscriber = f"crash_{run}"
    start = workers(run, subscriber)
    first, second = await asyncio.to_thread(start), await asyncio.to_thread(start)
    aggregates = [f"agg-{run}-{n}" for n in range(20)]
    sessions = create_session_factory(engine)
    publishing = asyncio.create_task(publish_probes(sessions, run, aggregates, 10))

    async def some_done() -> bool:
        return len(await effects(engine, await _run_events(engine, run))) >= 30

    async def one_in_flight() -> bool:
        # An attempt counted and not finished: its handler is running right now.
        rows = await deliveries(engine, await _run_events(engine, run))
        return any(d.status == DeliveryStatus.PENDING and d.attempts >= 1 for d in rows)

    await eventually(some_done, within=60)
    # Kill while a handler runs (each takes HANDLER_SECONDS), not between two deliveries.
    await eventually(one_in_flight, within=60, poll=0.02)
    # Both, a moment apart: deliveries start eagerly on the worker whose relay pass
    # started them, so one worker alone may have had nothing in flight.
    os.kill(first.pid, signal.SIGKILL)
    await asyncio.sleep(0.3)
    os.kill(second.pid, signal.SIGKILL)
    await asyncio.to_thread(start)  # a fresh worker, as an operator would
    ids = await publishing
    await eventually(lambda: all_finished(engine, ids), within=120, poll=0.5)

    found = await effects(engine, ids)
    assert sorted(e.event_id for e in found) == sorted(ids)  # none lost, none doubled
    for aggregate in aggregates:
        seqs = [e.seq for e in found if e.aggregate_id == aggregate]
        assert seqs == sorted(seqs)
        assert len(seqs) == 10
    rows = await deliveries(engine, ids)
    assert {d.status for d in rows} == {DeliveryStatus.DELIVERED}
    assert len(rows) == len(ids)
    # The kill did hit deliveries in flight: their attempts were lost and run again.
    assert sum(d.attempts for d in rows) > len(ids)


async def test_the_new_codes_only_worker_killed_beside_an_old_one_loses_none_of_its_events(
    settings: Settings,
    temporal_client: Client,
    engine: AsyncEngine,
    workers: Callable[[str, str], Start],
) -> None:
    run = run_id()
    kept, added = f"kept_{run}", f"added_{run}"
    sessions = create_session_factory(engine)
    aggregates = [f"agg-{run}-{n}" for n in range(10)]
    start_new = workers(run, f"{kept},{added}")
    # The old code's worker (no ``added``) in this process, the new code's in another.
    async with relay(quick(settings), temporal_client, [Recorder(kept, run).subscriber]):
        new = await asyncio.to_thread(start_new)
        await eventually(lambda: _known(sessions, added))
        publishing = asyncio.create_task(publish_probes(sessions, run, aggregates, 10))

        async def added_in_flight() -> bool:
            rows = await deliveries(engine, await _run_events(engine, run))
            return any(
                d.subscriber == added and d.status == DeliveryStatus.PENDING and d.attempts >= 1
                for d in rows
            )

        await eventually(added_in_flight, within=60, poll=0.02)
        os.kill(new.pid, signal.SIGKILL)
        # Meanwhile the old code's relay fans out and delivers ``kept``, and its worker
        # takes over the killed one's workflows: ``added``'s deliveries wait, pending.
        await asyncio.sleep(3)
        await asyncio.to_thread(start_new)  # its replacement
        ids = await publishing
        await eventually(lambda: all_finished(engine, ids), within=120, poll=0.5)
    found = await effects(engine, ids)
    for name in (kept, added):
        mine = [e for e in found if e.subscriber == name]
        assert sorted(e.event_id for e in mine) == sorted(ids)  # none lost, none doubled
        for aggregate in aggregates:
            seqs = [e.seq for e in mine if e.aggregate_id == aggregate]
            assert seqs == sorted(seqs)
    rows = await deliveries(engine, ids)
    assert {(d.subscriber, d.status) for d in rows} == {
        (kept, DeliveryStatus.DELIVERED),
        (added, DeliveryStatus.DELIVERED),
    }
    assert len(rows) == 2 * len(ids)


async def _known(sessions: SessionFactory, name: str) -> bool:
    async with sessions() as session:
        known = await SubscriptionRepository(session).all()
    return any(k.subscriber == name for k in known)


async def _run_events(engine: AsyncEngine, run: str) -> list[str]:
    async with create_session_factory(engine)() as session:
        rows = await session.exec(
            select(OutboxEvent.id).where(col(OutboxEvent.data)["run"].astext == run)
        )
        return list(rows.all())
