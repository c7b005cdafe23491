"""Housekeeping workflows, each run from a Temporal Schedule.

``WorkflowStartRelayWorkflow`` starts workflows whose start was missed (e.g. Temporal was
unreachable when the request committed); ``ReservationSweepWorkflow`` returns expired
stock reservations (both every minute); ``OutboxPruneWorkflow`` deletes delivered outbox
rows, finished webhook deliveries and started workflow starts past their retention
(hourly);
``AnalyticsRollupWorkflow`` recomputes the analytics hours touched since its last run
(every minute)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.analytics import AnalyticsActivities
    from activities.inventory import InventoryActivities, SweepInput, SweepResult
    from activities.maintenance import MaintenanceActivities, RelayInput, RelayResult
    from activities.pruning import OutboxPruneActivities
    from workflows.types.analytics import ANALYTICS_ROLLUP_WORKFLOW, RollupInput, RollupResult
    from workflows.types.pruning import (
        OUTBOX_PRUNE_WORKFLOW,
        PruneBatchInput,
        PruneInput,
        PruneResult,
    )


@workflow.defn(name="WorkflowStartRelayWorkflow")
class WorkflowStartRelayWorkflow:
    @workflow.run
    async def run(self, input: RelayInput) -> RelayResult:
        return await workflow.execute_activity_method(
            MaintenanceActivities.relay_workflow_starts,
            input,
            start_to_close_timeout=timedelta(seconds=50),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


@workflow.defn(name="ReservationSweepWorkflow")
class ReservationSweepWorkflow:
    """Expired stock reservations go back to stock. Runs every minute from a Schedule."""

    @workflow.run
    async def run(self, input: SweepInput) -> SweepResult:
        return await workflow.execute_activity_method(
            InventoryActivities.sweep_expired_reservations,
            input,
            start_to_close_timeout=timedelta(seconds=50),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


@workflow.defn(name=OUTBOX_PRUNE_WORKFLOW)
class OutboxPruneWorkflow:
    """Delivered outbox rows older than ``OUTBOX_RETENTION_DAYS`` go, finished webhook
    deliveries past their status's retention and workflow starts started longer than
    ``WORKFLOW_START_RETENTION_DAYS`` ago, a batch per activity call, until a batch comes
    back short or ``max_batches`` ran."""

    @workflow.run
    async def run(self, input: PruneInput) -> PruneResult:
        deleted = 0
        batches = 0
        while batches < input.max_batches:
            result = await workflow.execute_activity_method(
                OutboxPruneActivities.prune_outbox_batch,
                PruneBatchInput(limit=input.batch_size),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
            batches += 1
            deleted += result.deleted
            if result.deleted < input.batch_size:
                break
        return PruneResult(deleted=deleted, batches=batches)


@workflow.defn(name=ANALYTICS_ROLLUP_WORKFLOW)
class AnalyticsRollupWorkflow:
    """The hourly analytics rollups catch up with what changed since the last run."""

    @workflow.run
    async def run(self, input: RollupInput) -> RollupResult:
        return await workflow.execute_activity_method(
            AnalyticsActivities.refresh_rollups,
            input,
            # A first run over a large history recomputes every hour it holds: it commits
            # its progress a day at a time and heartbeats, so a retry (or the next run)
            # resumes where it stopped, and a lost worker is noticed in two minutes.
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
