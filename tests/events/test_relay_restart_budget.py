"""A delivery the relay restarts (its batch was terminated or lost): live, as in
``test_relay``, on real PostgreSQL and the Temporal dev server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from core.db import create_session_factory
from core.settings import Settings
from models.events import DeliveryStatus
from services.events.subscribers import DomainEvent
from tests.events.relay_support import (
    Recorder,
    deliveries,
    effects_table,
    eventually,
    publish_probes,
    quick,
    relay,
    run_id,
)


@pytest.fixture(scope="module", autouse=True)
async def _effects(engine: AsyncEngine) -> AsyncIterator[None]:
    async with effects_table(engine):
        yield


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


async def _attempts(handler: Recorder, event_id: str, n: int) -> bool:
    return handler.attempts.get(event_id, 0) >= n
