"""``WorkflowStartRelayWorkflow``: start workflows whose start was missed (e.g. Temporal
was unreachable when the request committed). Runs every minute from a Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
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
