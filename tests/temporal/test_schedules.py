from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError

from core.settings import Settings
from temporal.queues import TaskQueue
from temporal.schedules import (
    ANALYTICS_ROLLUP,
    OUTBOX_PRUNE,
    RESERVATION_SWEEP,
    WORKFLOW_START_RELAY,
    ensure_schedules,
)
from workers.main import worker_deps
from workers.registry import components_for
from workflows.maintenance import AnalyticsRollupWorkflow, OutboxPruneWorkflow

# schedule id -> (workflow, seconds between runs)
EXPECTED = {
    WORKFLOW_START_RELAY: ("WorkflowStartRelayWorkflow", 60),
    RESERVATION_SWEEP: ("ReservationSweepWorkflow", 60),
    OUTBOX_PRUNE: ("OutboxPruneWorkflow", 3600),
    ANALYTICS_ROLLUP: ("AnalyticsRollupWorkflow", 60),
}


async def _delete_schedules(client: Client) -> None:
    for schedule_id in EXPECTED:
        with contextlib.suppress(RPCError):  # not there: nothing to delete
            await client.get_schedule_handle(schedule_id).delete()


@pytest.fixture
async def no_schedules(temporal_client: Client) -> AsyncIterator[Client]:
    """No schedules before (an earlier test or worker may have made them) and none left
    after: left on the suite's Temporal, they start relay, sweep and rollup workflows
    every minute for whichever live workers of later modules poll the default queue."""
    await _delete_schedules(temporal_client)
    yield temporal_client
    await _delete_schedules(temporal_client)


async def test_schedules_are_created_once(no_schedules: Client) -> None:
    temporal_client = no_schedules
    assert sorted(await ensure_schedules(temporal_client)) == sorted(EXPECTED)
    assert await ensure_schedules(temporal_client) == []
    for schedule_id, (workflow, seconds) in EXPECTED.items():
        description = await temporal_client.get_schedule_handle(schedule_id).describe()
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == workflow
        assert action.task_queue == str(TaskQueue.DEFAULT)
        assert description.schedule.spec.intervals[0].every.total_seconds() == seconds


async def test_the_outbox_prune_workflow_and_activity_run_on_the_default_queue(
    temporal_client: Client, settings: Settings
) -> None:
    async with worker_deps(settings, temporal_client) as deps:
        default = components_for(TaskQueue.DEFAULT, deps)
        elsewhere = [components_for(q, deps) for q in TaskQueue if q is not TaskQueue.DEFAULT]
    names = {getattr(a, "__temporal_activity_definition").name for a in default.activities}
    assert OutboxPruneWorkflow in default.workflows
    assert "events.prune_outbox_batch" in names
    assert all(OutboxPruneWorkflow not in parts.workflows for parts in elsewhere)


async def test_the_analytics_rollup_workflow_and_activity_run_on_the_default_queue(
    temporal_client: Client, settings: Settings
) -> None:
    async with worker_deps(settings, temporal_client) as deps:
        default = components_for(TaskQueue.DEFAULT, deps)
    names = {getattr(a, "__temporal_activity_definition").name for a in default.activities}
    assert AnalyticsRollupWorkflow in default.workflows
    assert "analytics.refresh_rollups" in names
