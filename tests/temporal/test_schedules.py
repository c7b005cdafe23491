from __future__ import annotations

import contextlib

from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError

from temporal.schedules import RESERVATION_SWEEP, WORKFLOW_START_RELAY, ensure_schedules

EXPECTED = {
    WORKFLOW_START_RELAY: "WorkflowStartRelayWorkflow",
    RESERVATION_SWEEP: "ReservationSweepWorkflow",
}


async def test_schedules_are_created_once(temporal_client: Client) -> None:
    for schedule_id in EXPECTED:
        with contextlib.suppress(RPCError):  # an earlier test (or worker) may have made it
            await temporal_client.get_schedule_handle(schedule_id).delete()
    assert sorted(await ensure_schedules(temporal_client)) == sorted(EXPECTED)
    assert await ensure_schedules(temporal_client) == []
    for schedule_id, workflow in EXPECTED.items():
        description = await temporal_client.get_schedule_handle(schedule_id).describe()
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == workflow
        assert description.schedule.spec.intervals[0].every.total_seconds() == 60
