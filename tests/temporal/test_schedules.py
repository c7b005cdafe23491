from __future__ import annotations

import contextlib

from temporalio.client import Client
from temporalio.service import RPCError

from temporal.schedules import WORKFLOW_START_RELAY, ensure_schedules


async def test_schedules_are_created_once(temporal_client: Client) -> None:
    handle = temporal_client.get_schedule_handle(WORKFLOW_START_RELAY)
    with contextlib.suppress(RPCError):  # an earlier test (or worker) may have made it
        await handle.delete()
    assert await ensure_schedules(temporal_client) == [WORKFLOW_START_RELAY]
    assert await ensure_schedules(temporal_client) == []
    description = await temporal_client.get_schedule_handle(WORKFLOW_START_RELAY).describe()
    action = description.schedule.action
    assert getattr(action, "workflow", None) == "WorkflowStartRelayWorkflow"
    assert description.schedule.spec.intervals[0].every.total_seconds() == 60
