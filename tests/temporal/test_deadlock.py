"""A workflow task slower than the SDK's 2 s is not a deadlock where the limit is raised
(``temporal/deadlock.py``): the same slow task is failed as one under the SDK's limit and
completes under ours."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from temporal.deadlock import with_deadlock_timeout

# Longer than the SDK's 2 s: what a full garbage collection took in a starved test process.
SLOW_TASK_SECONDS = 3.0


# The runs whose first task was slow (unsandboxed: this module's own set).
SLOWED: set[str] = set()


@workflow.defn(name="SlowFirstTask", sandboxed=False)  # it blocks its thread: no sandbox
class SlowFirstTask:
    @workflow.run
    async def run(self) -> str:
        run_id = workflow.info().run_id
        if run_id not in SLOWED:
            SLOWED.add(run_id)
            # Blocks the workflow's thread, as a long collection does (its first task
            # only: a failed task is retried, and the retry is quick).
            time.sleep(SLOW_TASK_SECONDS)  # noqa: ASYNC251
        return "done"


def _worker(env: WorkflowEnvironment, queue: str) -> Worker:
    return Worker(
        env.client,
        task_queue=queue,
        workflows=[SlowFirstTask],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def _task_failures(handle: WorkflowHandle[SlowFirstTask, str]) -> list[str]:
    return [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_a_slow_task_is_a_deadlock_under_the_sdks_limit(
    temporal_env: WorkflowEnvironment,
) -> None:
    queue = f"deadlock-{uuid4().hex[:8]}"
    async with _worker(temporal_env, queue):
        handle = await temporal_env.client.start_workflow(
            SlowFirstTask.run, id=f"slow-{queue}", task_queue=queue
        )
        try:
            # The failed task is retried (quickly: its retry is not slow) and completes.
            assert await asyncio.wait_for(handle.result(), timeout=120) == "done"
        finally:
            failures = await _task_failures(handle)
    assert len(failures) == 1, failures
    assert "deadlock" in failures[0]


async def test_the_same_task_completes_under_a_raised_limit(
    temporal_env: WorkflowEnvironment,
) -> None:
    queue = f"deadlock-{uuid4().hex[:8]}"
    async with with_deadlock_timeout(_worker(temporal_env, queue), 30):
        handle = await temporal_env.client.start_workflow(
            SlowFirstTask.run, id=f"slow-{queue}", task_queue=queue
        )
        assert await asyncio.wait_for(handle.result(), timeout=120) == "done"
    assert await _task_failures(handle) == []
