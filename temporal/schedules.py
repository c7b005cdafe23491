"""Temporal Schedules Shopweave relies on, created idempotently on any server."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from activities.inventory import SweepInput
from activities.maintenance import RelayInput
from temporal.queues import TaskQueue

log = logging.getLogger(__name__)

WORKFLOW_START_RELAY = "workflow-start-relay"
RESERVATION_SWEEP = "reservation-sweep"


def _every_minute(workflow: str, arg: object, schedule_id: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow,
            arg,
            id=schedule_id,
            task_queue=str(TaskQueue.DEFAULT),
            execution_timeout=timedelta(minutes=2),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=1))]),
        # A slow run must not pile up behind itself.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def _schedules() -> dict[str, Schedule]:
    return {
        WORKFLOW_START_RELAY: _every_minute(
            "WorkflowStartRelayWorkflow", RelayInput(), WORKFLOW_START_RELAY
        ),
        RESERVATION_SWEEP: _every_minute(
            "ReservationSweepWorkflow", SweepInput(), RESERVATION_SWEEP
        ),
    }


async def ensure_schedules(client: Client) -> list[str]:
    """Create the schedules that do not exist yet; returns the ids created."""
    created = []
    for schedule_id, schedule in _schedules().items():
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:
            continue
        created.append(schedule_id)
        log.info("created schedule", extra={"schedule": schedule_id})
    return created
