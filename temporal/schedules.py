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
from workflows.types.analytics import ANALYTICS_ROLLUP_WORKFLOW, RollupInput
from workflows.types.pruning import OUTBOX_PRUNE_WORKFLOW, PruneInput

log = logging.getLogger(__name__)

WORKFLOW_START_RELAY = "workflow-start-relay"
RESERVATION_SWEEP = "reservation-sweep"
OUTBOX_PRUNE = "outbox-prune"
ANALYTICS_ROLLUP = "analytics-rollup"


def _every(
    every: timedelta, workflow: str, arg: object, schedule_id: str, timeout: timedelta
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow,
            arg,
            id=schedule_id,
            task_queue=str(TaskQueue.DEFAULT),
            execution_timeout=timeout,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A slow run must not pile up behind itself.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def _every_minute(workflow: str, arg: object, schedule_id: str) -> Schedule:
    return _every(timedelta(minutes=1), workflow, arg, schedule_id, timedelta(minutes=2))


def _schedules() -> dict[str, Schedule]:
    return {
        WORKFLOW_START_RELAY: _every_minute(
            "WorkflowStartRelayWorkflow", RelayInput(), WORKFLOW_START_RELAY
        ),
        RESERVATION_SWEEP: _every_minute(
            "ReservationSweepWorkflow", SweepInput(), RESERVATION_SWEEP
        ),
        # The retentions are the worker's (OUTBOX_RETENTION_DAYS, …), read at each run.
        OUTBOX_PRUNE: _every(
            timedelta(hours=1),
            OUTBOX_PRUNE_WORKFLOW,
            PruneInput(),
            OUTBOX_PRUNE,
            timeout=timedelta(minutes=30),
        ),
        # Every minute; a first run over a long history may take longer (runs never overlap).
        ANALYTICS_ROLLUP: _every(
            timedelta(minutes=1),
            ANALYTICS_ROLLUP_WORKFLOW,
            RollupInput(),
            ANALYTICS_ROLLUP,
            timeout=timedelta(minutes=15),
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
