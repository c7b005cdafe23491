"""A trace for every workflow run, also one started without a trace: a Temporal Schedule's
runs (``temporal/schedules.py``: no request, no client span made their start), or a start
from the Temporal CLI or UI.

OpenTelemetry's ``TracingInterceptor`` makes a run's workflow spans only under the span its
start carried (the client's ``StartWorkflow``): a run without one made none, and each of its
activities' ``RunActivity`` spans was the root of a trace of its own (the outbox pruning's
batches, three traces for one run). Here such a run is a trace of its own: its trace id is
the run id (a UUID: the trace of a run seen in the Temporal UI is found by it), its root
span ``ScheduledRun:{workflow type}`` (``UntracedStart:{workflow type}`` when no schedule
started it) is recorded once, by the run's first workflow task, and every workflow task
(a replay on another worker too) puts the run's workflow spans (``RunWorkflow``,
``StartActivity``, …), and so its activities, under that root: its ids are derived from
the run id, and nothing is stored in the run's history. A run an operator reset (a new run
id, its history the reset one's up to the reset point) goes on in the trace of the run it
was reset from (Temporal's ``original_execution_run_id``), under that run's root: its own
first task is replayed, so it would record none. A run whose start carried a trace (a
request's, an event delivery's) is traced as before, in that trace.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan
from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.contrib.opentelemetry import (
    TracingInterceptor,
    TracingWorkflowInboundInterceptor,
)
from temporalio.worker import ExecuteWorkflowInput, WorkflowInterceptorClassInput

from core.telemetry import Tracing

# The extern function (run outside the workflow sandbox) that gives an untraced run its trace.
_RUN_TRACE = "shopweave_run_trace"
# Set by the Temporal server on each run a Schedule starts.
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")


@dataclass(frozen=True)
class UntracedRun:
    workflow_type: str
    workflow_id: str
    # The run whose trace this is: the run itself, or for a run reset by an operator the
    # run it was reset from (whose first task recorded the root).
    run_id: str
    schedule_id: str | None
    time_ns: int
    # The run's first workflow task (not a replay of the run's history: a worker that lost
    # the run from its cache, or took it over), and not a reset run's: the root span is
    # recorded now (again if that task failed and runs again, as the SDK's own RunWorkflow
    # span is).
    first_task: bool


def run_trace_ids(run_id: str) -> tuple[int, int]:
    """The trace id and the root span id of a run's own trace."""
    digest = hashlib.sha256(run_id.encode()).digest()
    try:
        trace_id = uuid.UUID(run_id).int
    except ValueError:  # not a server's run id (a UUID): still one trace id per run
        trace_id = int.from_bytes(digest[8:24])
    return trace_id or 1, int.from_bytes(digest[:8]) or 1


class RunTracingInterceptor(TracingInterceptor):
    """``TracingInterceptor`` on ``tracing``'s tracer, giving an untraced run its trace."""

    def __init__(self, tracing: Tracing) -> None:
        super().__init__(tracing.tracer)
        self._tracing = tracing

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        input.unsafe_extern_functions[_RUN_TRACE] = self._run_trace
        return _RunTracingInboundInterceptor

    def _run_trace(self, run: UntracedRun) -> dict[str, str]:
        """The carrier (``traceparent``) of ``run``'s root span; the span recorded on the
        run's first workflow task."""
        trace_id, span_id = run_trace_ids(run.run_id)
        kind = "ScheduledRun" if run.schedule_id else "UntracedStart"
        name = f"{kind}:{run.workflow_type}"
        if run.first_task:
            attributes = {"temporalWorkflowID": run.workflow_id, "temporalRunID": run.run_id}
            if run.schedule_id:
                attributes["temporalScheduleID"] = run.schedule_id
            self._tracing.span_with_ids(
                trace_id, span_id, name, attributes=attributes, time_ns=run.time_ns
            )
        root = NonRecordingSpan(self._tracing.root_context(trace_id, span_id, name))
        carrier: dict[str, str] = {}
        self.text_map_propagator.inject(carrier, trace.set_span_in_context(root))
        return carrier


class _RunTracingInboundInterceptor(TracingWorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        # Each instance of the run (a worker's cache lost it, another worker took it over)
        # starts here, before any of its spans is made.
        if not self._load_workflow_context_carrier():
            info = workflow.info()
            # A reset keeps the run's started event, and with it the first run's id here.
            traced_as = info.original_execution_run_id or info.run_id
            run = UntracedRun(
                workflow_type=info.workflow_type,
                workflow_id=info.workflow_id,
                run_id=traced_as,
                schedule_id=info.typed_search_attributes.get(SCHEDULED_BY),
                time_ns=workflow.time_ns(),
                first_task=traced_as == info.run_id and not workflow.unsafe.is_replaying(),
            )
            self._workflow_context_carrier = workflow.extern_functions()[_RUN_TRACE](run)
        return await super().execute_workflow(input)
