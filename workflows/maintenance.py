"""Housekeeping workflows, each run every minute from a Temporal Schedule.

``WorkflowStartRelayWorkflow`` starts workflows whose start was missed (e.g. Temporal was
unreachable when the request committed); ``ReservationSweepWorkflow`` returns expired
stock reservations."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities, SweepInput, SweepResult
    from activities.maintenance import MaintenanceActivities, RelayInput, RelayResult


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
