"""One delivery workflow per relay pass, live: the events that reach a pass share an
``EventBatchWorkflow``; a delivery failing in a batch holds back only its own line; a
pass that dies between starting its batch and recording it leaves no delivery behind and
none in two workflows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.db import create_session_factory
from core.errors import ValidationFailed
from core.settings import Settings
from models.events import DeliveryStatus
from services.events.deliveries import DeliveryRepository
from services.events.relay import RelayService
from services.events.subscribers import DomainEvent
from temporal.clients.connection import TemporalConnection
from temporal.clients.events import EventDeliveryWorkflows
from tests.events.relay_support import (
    Recorder,
    all_finished,
    current_details,
    deliveries,
    effects,
    effects_table,
    eventually,
    publish_probes,
    quick,
    relay,
    run_id,
)
from workflows.types.events import EVENT_BATCH_WORKFLOW, DeliveryBatch


@pytest.fixture(scope="module", autouse=True)
async def _effects(engine: AsyncEngine) -> AsyncIterator[None]:
    async with effects_table(engine):
        yield


async def test_the_events_that_reach_one_pass_share_one_workflow(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    crm, mail = Recorder(f"crm_{run}", run), Recorder(f"mail_{run}", run)
    sessions = create_session_factory(engine)
    # Published before the relay runs: its first pass sees all four.
    ids = await publish_probes(sessions, run, [f"agg-{run}-{n}" for n in range(4)], 1)
    async with relay(quick(settings), temporal_client, [crm.subscriber, mail.subscriber]):
        await eventually(lambda: all_finished(engine, ids))
    rows = await deliveries(engine, ids)
    assert len(rows) == 8
    assert {(d.status, d.attempts) for d in rows} == {(DeliveryStatus.DELIVERED, 1)}
    [workflow_id] = {d.workflow_id for d in rows}
    assert workflow_id is not None
    assert workflow_id.startswith("events-batch-")
    handle = temporal_client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    assert description.workflow_type == EVENT_BATCH_WORKFLOW
    assert await description.static_summary() == (
        "; ".join(f"system.relay_probe {event} to {crm.name}, {mail.name}" for event in ids[:3])
        + "; and 1 more events"
    )
    result = await handle.result()
    assert {event: set(by) for event, by in result["outcomes"].items()} == {
        event: {crm.name, mail.name} for event in ids
    }
    found = await effects(engine, ids)
    assert sorted((e.subscriber, e.event_id) for e in found) == sorted(
        (name, event) for name in (crm.name, mail.name) for event in ids
    )


async def test_a_failing_delivery_in_a_batch_holds_back_only_its_own_line(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    stuck, free = f"stuck-{run}", f"free-{run}"
    gate = asyncio.Event()

    async def refuses_the_stuck_first(event: DomainEvent, attempt: int) -> None:
        if event.aggregate_id == stuck and event.data["n"] == 0:
            await gate.wait()
            raise ValidationFailed("no such customer", code="customer_not_found")

    handler = Recorder(f"picky_{run}", run, behaviour=refuses_the_stuck_first)
    sessions = create_session_factory(engine)
    # stuck 0, free 0, stuck 1, free 1: the first pass starts the two heads together.
    ids = await publish_probes(sessions, run, [stuck, free], 2)
    async with relay(quick(settings), temporal_client, [handler.subscriber]):
        # The free line goes on, its second event in a later pass, while the stuck
        # line's first delivery is still being delivered in the first batch.
        await eventually(lambda: _has_effects(engine, [ids[1], ids[3]]))
        rows = {d.event_id: d for d in await deliveries(engine, ids)}
        batch = rows[ids[0]].workflow_id
        assert batch is not None
        assert rows[ids[1]].workflow_id == batch
        assert rows[ids[3]].workflow_id not in (None, batch)
        assert rows[ids[0]].status == DeliveryStatus.PENDING
        assert (rows[ids[2]].status, rows[ids[2]].started_at) == (DeliveryStatus.PENDING, None)
        handle = temporal_client.get_workflow_handle(batch)
        details = await current_details(handle)
        assert details.startswith(f"delivering to {handler.name} of {ids[0]}\n"), details
        assert f"{handler.name} of {ids[1]} delivered" in details
        gate.set()
        # A dead letter's event is never "delivered": wait for the others.
        await eventually(lambda: all_finished(engine, ids[1:]))
        # The operator sees which delivery of the batch failed, and why.
        details = await current_details(handle)
        failed = f"{handler.name} of {ids[0]} failed (customer_not_found: no such customer)"
        assert failed in details, details
    rows = {d.event_id: d for d in await deliveries(engine, ids)}
    assert rows[ids[0]].status == DeliveryStatus.FAILED
    assert rows[ids[0]].last_error == "customer_not_found: no such customer"
    assert rows[ids[0]].workflow_id == batch
    assert {rows[e].status for e in ids[1:]} == {DeliveryStatus.DELIVERED}
    # The stuck line's second event went only once its first was a dead letter.
    dead_at = rows[ids[0]].finished_at
    assert dead_at is not None
    second_started = rows[ids[2]].started_at
    assert second_started is not None
    assert second_started >= dead_at


async def _has_effects(engine: AsyncEngine, event_ids: Sequence[str]) -> bool:
    return {e.event_id for e in await effects(engine, event_ids)} == set(event_ids)


async def test_a_pass_that_dies_after_starting_its_batch_leaves_it_to_the_next_pass(
    settings: Settings, temporal_client: Client, engine: AsyncEngine
) -> None:
    run = run_id()
    handler = Recorder(f"after_crash_{run}", run)
    sessions = create_session_factory(engine)
    fast = quick(settings)
    ids = await publish_probes(sessions, run, [f"agg-{run}-{n}" for n in range(3)], 2)
    workflows = EventDeliveryWorkflows(TemporalConnection.of(temporal_client), fast)
    started: list[DeliveryBatch] = []

    async def starts_then_dies(batches: Sequence[DeliveryBatch]) -> list[str]:
        started.extend(batches)
        await workflows.start_all(batches)
        raise RuntimeError("the relay died before recording its start")

    # No worker serves the events queue yet: the started workflow waits for one.
    with pytest.raises(RuntimeError):
        await RelayService(sessions, [handler.subscriber]).run_pass(starts_then_dies)
    [batch] = started
    assert {(d.event_id, d.subscriber) for d in batch.deliveries} == {
        (event, handler.name) for event in ids[:3]
    }
    claimed = {d.event_id: d for d in await deliveries(engine, ids)}
    assert {(claimed[e].workflow_id, claimed[e].started_at) for e in ids[:3]} == {
        (batch.workflow_id, None)
    }
    async with relay(fast, temporal_client, [handler.subscriber]):
        await eventually(lambda: all_finished(engine, ids), within=90)
    rows = {d.event_id: d for d in await deliveries(engine, ids)}
    assert {(d.status, d.attempts, d.generation) for d in rows.values()} == {
        (DeliveryStatus.DELIVERED, 1, 0)
    }
    assert {rows[e].workflow_id for e in ids[:3]} == {batch.workflow_id}
    assert all(rows[e].started_at is not None for e in ids)
    assert sorted(e.event_id for e in await effects(engine, ids)) == sorted(ids)
    # Visibility lags the run's start: wait until it lists the batch's workflow at all.
    query = f"WorkflowId = '{batch.workflow_id}'"

    async def listed() -> bool:
        return [w async for w in temporal_client.list_workflows(query)] != []

    await eventually(listed)
    runs = [w async for w in temporal_client.list_workflows(query)]
    assert len(runs) == 1


async def test_a_claimed_delivery_is_started_by_its_first_attempt(engine: AsyncEngine) -> None:
    """A batch's workflow may run, and finish its deliveries, before any pass records its
    start (the pass that started it died, and the next one then finds nothing pending):
    the delivery's first attempt marks it started, so no delivered row lacks a start."""
    run = run_id()
    handler = Recorder(f"first_attempt_{run}", run)
    sessions = create_session_factory(engine)
    [event_id] = await publish_probes(sessions, run, [f"agg-{run}"], 1)

    async def dies_before_starting(batches: Sequence[DeliveryBatch]) -> list[str]:
        raise RuntimeError("the relay died before starting its batch")

    with pytest.raises(RuntimeError):
        await RelayService(sessions, [handler.subscriber]).run_pass(dies_before_starting)
    [claimed] = await deliveries(engine, [event_id])
    assert claimed.workflow_id is not None
    assert claimed.started_at is None
    async with sessions() as session, session.begin():
        repository = DeliveryRepository(session)
        assert await repository.begin_attempt(event_id, handler.name, claimed.generation)
    [attempted] = await deliveries(engine, [event_id])
    assert attempted.attempts == 1
    assert attempted.started_at is not None
    first_start = attempted.started_at
    async with sessions() as session, session.begin():
        repository = DeliveryRepository(session)
        assert await repository.begin_attempt(event_id, handler.name, claimed.generation)
    [again] = await deliveries(engine, [event_id])
    assert (again.attempts, again.started_at) == (2, first_start)  # the first attempt's
