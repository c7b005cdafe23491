"""``StackProbeWorkflow``: is every task queue served by a worker that can do its job?

``shop dev`` runs it once the workers are up; operators can run it at any time
(``shop admin probe``). A queue with no worker is reported, not waited on forever.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities.system import ProbeInput, ProbeResult, SystemActivities


class StackProbeInput(BaseModel):
    queues: list[str]
    # How long a queue may go without a worker picking the probe up.
    pickup_timeout_seconds: float = 10.0


class QueueProbe(BaseModel):
    queue: str
    ok: bool
    result: ProbeResult | None = None
    error: str | None = None


class StackProbeResult(BaseModel):
    queues: list[QueueProbe]

    @property
    def ok(self) -> bool:
        return all(q.ok for q in self.queues)


@workflow.defn(name="StackProbeWorkflow")
class StackProbeWorkflow:
    @workflow.run
    async def run(self, input: StackProbeInput) -> StackProbeResult:
        probes = await asyncio.gather(
            *(self._probe(queue, input.pickup_timeout_seconds) for queue in input.queues)
        )
        return StackProbeResult(queues=list(probes))

    async def _probe(self, queue: str, pickup_timeout: float) -> QueueProbe:
        try:
            result = await workflow.execute_activity_method(
                SystemActivities.probe,
                ProbeInput(queue=queue),
                task_queue=queue,
                schedule_to_start_timeout=timedelta(seconds=pickup_timeout),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
                error = f"no worker picked the probe up within {pickup_timeout:g}s"
            else:
                error = f"{type(cause or err).__name__}: {cause or err}"
            return QueueProbe(queue=queue, ok=False, error=error)
        return QueueProbe(queue=queue, ok=True, result=result)
