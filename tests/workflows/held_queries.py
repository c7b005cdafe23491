"""A query answered while a workflow's local step ends, and what a test checks of it.

The SDK core reports a local step's result with a query's answer when the result comes
in while the query is answered, and asks for a new workflow task for what the workflow
does with it: the step's marker is in one workflow task, the commands that followed its
result in the next. A replay hands the result back in the marker's task, so a
``workflow.patched`` first asked there answers False (the next task's patch marker not
known yet) and the replay fails on that marker: a query of the closed workflow (as the
Temporal UI asks) and a worker taking the run up again after its cache dropped it.

The query has to reach the workflow while its step runs, and the step has to end while
the query is answered: a short workflow task timeout (``TASK_TIMEOUT``: the core reports
a task with a step still running at 80 % of it, and the query comes with the next one),
the step held until the query has begun, and the query held until the step has ended.
``HoldQueries`` does the holding by blocking the workflow's thread (at most 10 s, under
the suite's deadlock limit), so its worker runs workflows unsandboxed (a sandbox would
import this module again, with a ``HELD`` of its own) and not in debug mode (which runs
a workflow task on the event loop's thread: the test could not let the step end).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from temporal.sandbox import workflow_runner

LOCAL_MARKER = "core_local_activity"
# Reported at 80 % with the step running (3.2 s), the query's task lasting less.
TASK_TIMEOUT = timedelta(seconds=4)
QUERY = "status"
T = TypeVar("T")


class HeldQuery:
    """One workflow's next ``status`` query, held in the workflow's thread."""

    def __init__(self) -> None:
        self.begun = threading.Event()
        self.release = threading.Event()


HELD: dict[str, HeldQuery] = {}


class _HoldQueries(WorkflowInboundInterceptor):
    def handle_query(self, input: HandleQueryInput) -> Any:
        held = HELD.pop(workflow.info().workflow_id, None)
        if held is not None and input.query == QUERY:
            held.begun.set()
            held.release.wait(10)
        return super().handle_query(input)


class HoldQueries(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _HoldQueries


async def query_while_the_step_ends(
    handle: WorkflowHandle[Any, Any],
    result_type: type[T],
    end_step: Callable[[], Awaitable[None]],
) -> T:
    """Query ``handle`` while its local step runs (the step must be held already, its
    workflow started with ``TASK_TIMEOUT``); once the query has begun, ``end_step``
    lets the step end and waits until it has; the answer waits a while longer, so the
    step's result reaches the core while the query is still answered."""
    held = HELD[handle.id] = HeldQuery()
    query = asyncio.create_task(handle.query(QUERY, result_type=result_type))
    try:
        assert await asyncio.to_thread(held.begun.wait, 20), "the query never reached it"
        await end_step()
        await asyncio.sleep(1.5)
    finally:
        held.release.set()
    answer: T = await query
    return answer


def step_ended_a_task(history: WorkflowHistory) -> bool:
    """Whether a local step's marker ended its workflow task (the race happened)."""
    events = list(history.events)
    return any(
        e.marker_recorded_event_attributes.marker_name == LOCAL_MARKER
        and events[i + 1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
        for i, e in enumerate(events[:-1])
    )


async def replay_failures(workflows: Sequence[type], history: WorkflowHistory) -> list[str]:
    """The replay failures of ``history`` on the SDK's sandbox and on our workers' runner."""
    failures = []
    for runner in [SandboxedWorkflowRunner(), workflow_runner()]:
        replayer = Replayer(
            workflows=workflows, data_converter=pydantic_data_converter, workflow_runner=runner
        )
        replayed = await replayer.replay_workflow(
            WorkflowHistory.from_json(history.workflow_id, history.to_json()),
            raise_on_replay_failure=False,
        )
        if replayed.replay_failure is not None:
            failures.append(f"{type(runner).__name__}: {replayed.replay_failure}")
    return failures
