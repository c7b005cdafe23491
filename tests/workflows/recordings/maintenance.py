"""The operators' workflows' recordings: the stack probe (``workflows/system.py``)
and the analytics rollup (``workflows/maintenance.py``), with their stand-in activities."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.system import ProbeInput, ProbeResult
from tests.workflows.recordings import recording
from workflows.maintenance import AnalyticsRollupWorkflow
from workflows.system import StackProbeInput, StackProbeWorkflow
from workflows.types.analytics import RollupInput, RollupResult


@activity.defn(name="system.probe")
async def probe(input: ProbeInput) -> ProbeResult:
    return ProbeResult(queue=input.queue, host="recorder", pid=1, database=True, redis=True)


@activity.defn(name="analytics.refresh_rollups")
async def refresh_rollups(input: RollupInput) -> RollupResult:
    return RollupResult(hours=2, refund_hours=0, watermark=datetime(2026, 12, 4, 12, tzinfo=UTC))


@recording("analytics_rollup_ok")
async def analytics_rollup(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        AnalyticsRollupWorkflow.run, RollupInput(), id="analytics-rollup", task_queue=queue
    )
    return "analytics-rollup"


@recording("stack_probe_ok")
async def stack_probe(env: WorkflowEnvironment, queue: str) -> str:
    await env.client.execute_workflow(
        StackProbeWorkflow.run, StackProbeInput(queues=[queue]), id="probe", task_queue=queue
    )
    return "probe"
