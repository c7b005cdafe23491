"""A trace for every workflow run, also one started without a trace: a Temporal Schedule's
runs (``temporal/schedules.py``: no request, no client span made their start), or a start
from the Temporal CLI or UI. The worker's side of the workflow spans
(``temporal/workflow_spans.py`` is the sandboxed side), on the SDK's public API only.

OpenTelemetry's ``TracingInterceptor`` makes a run's workflow spans only under the span its
start carried (the client's ``StartWorkflow``): a run without one made none, and each of its
activities' ``RunActivity`` spans was the root of a trace of its own (the outbox pruning's
batches, three traces for one run). Here such a run is a trace of its own: its trace id is
the run id (a UUID: the trace of a run seen in the Temporal UI is found by it), its root
span ``ScheduledRun:{workflow type}`` (``UntracedStart:{workflow type}`` when no schedule
started it) is recorded once, by the run's first workflow task, and every workflow task
(a replay on another worker too) puts the run's workflow spans (``RunWorkflow``,
``HandleSignal``, ``StartActivity``, …), and so its activities, under that root: its ids
are derived from the run id, and nothing is stored in the run's history. A run an operator
reset (a new run id, its history the reset one's up to the reset point) goes on in the
trace of the run it was reset from (Temporal's ``original_execution_run_id``), under that
run's root: its own first task is replayed, so it would record none. A run whose start
carried a trace (a request's, an event delivery's) is traced as before, in that trace.

``RunTracingInterceptor`` hands the client's calls and the activities to the SDK's
``TracingInterceptor`` (their spans, and the ``_tracer-data`` header they write and read,
which ours reads and writes through that interceptor's public ``header_key``,
``text_map_propagator`` and ``payload_converter``), and the workflows to ours in place of
the SDK's, which loads a run's trace only from its start's header, in private members.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan
from temporalio import client, worker
from temporalio.contrib.opentelemetry import TracingInterceptor

from core.telemetry import Tracing
from temporal.workflow_spans import (
    SPAN_RECORDER,
    Headers,
    RunSpansInbound,
    RunStart,
    WorkflowSpan,
)


def run_trace_ids(run_id: str) -> tuple[int, int]:
    """The trace id and the root span id of a run's own trace."""
    digest = hashlib.sha256(run_id.encode()).digest()
    try:
        trace_id = uuid.UUID(run_id).int
    except ValueError:  # not a server's run id (a UUID): still one trace id per run
        trace_id = int.from_bytes(digest[8:24])
    return trace_id or 1, int.from_bytes(digest[:8]) or 1


class RunSpanRecorder:
    """Makes the workflow spans a worker's runs ask for (``workflow_spans.SpanRecorder``),
    their context carried in the headers ``carrier`` (the SDK's interceptor) reads."""

    def __init__(self, tracing: Tracing, carrier: TracingInterceptor) -> None:
        self.tracing = tracing
        self.carrier = carrier

    def trace_of(self, headers: Headers) -> Context | None:
        payload = headers.get(self.carrier.header_key)
        if not payload:
            return None
        carried: Mapping[str, str] = self.carrier.payload_converter.from_payloads([payload])[0]
        if not carried:
            return None
        context = self.carrier.text_map_propagator.extract(carried)
        return context if trace.get_current_span(context).get_span_context().is_valid else None

    def with_trace(self, headers: Headers, context: Context) -> Headers:
        carried: dict[str, str] = {}
        self.carrier.text_map_propagator.inject(carried, context)
        if not carried:
            return headers
        payload = self.carrier.payload_converter.to_payloads([carried])[0]
        return {**headers, self.carrier.header_key: payload}

    def run_parent(self, run: RunStart) -> Context:
        """The span the run's start carried; for a run started without one, the root of
        the run's own trace, recorded on the run's first workflow task."""
        started = self.trace_of(run.headers)
        if started is not None:
            return started
        trace_id, span_id = run_trace_ids(run.run_id)
        kind = "ScheduledRun" if run.schedule_id else "UntracedStart"
        name = f"{kind}:{run.workflow_type}"
        if run.first_task:
            attributes = {"temporalWorkflowID": run.workflow_id, "temporalRunID": run.run_id}
            if run.schedule_id:
                attributes["temporalScheduleID"] = run.schedule_id
            self.tracing.span_with_ids(
                trace_id, span_id, name, attributes=attributes, time_ns=run.time_ns
            )
        root = NonRecordingSpan(self.tracing.root_context(trace_id, span_id, name))
        return trace.set_span_in_context(root)

    def record(self, span: WorkflowSpan) -> Headers | None:
        links = []
        if span.linked is not None:
            links.append(Link(trace.get_current_span(span.linked).get_span_context()))
        made = self.tracing.tracer.start_span(
            span.name,
            span.parent,
            kind=span.kind,
            attributes=span.attributes,
            links=links,
            start_time=span.time_ns,
        )
        if span.exception is not None:
            made.record_exception(span.exception)
        made.end(end_time=span.time_ns)
        if span.headers is None:
            return None
        return self.with_trace(span.headers, trace.set_span_in_context(made, span.parent))


class RunTracingInterceptor(client.Interceptor, worker.Interceptor):
    """OpenTelemetry's ``TracingInterceptor`` on ``tracing``'s tracer for the client's
    calls, the activities and Nexus operations; our workflow spans in its workflows (a
    run started without a trace in one of its own)."""

    def __init__(self, tracing: Tracing) -> None:
        self.sdk = TracingInterceptor(tracing.tracer)
        self.recorder = RunSpanRecorder(tracing, self.sdk)

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return self.sdk.intercept_client(next)

    def intercept_activity(
        self, next: worker.ActivityInboundInterceptor
    ) -> worker.ActivityInboundInterceptor:
        return self.sdk.intercept_activity(next)

    def intercept_nexus_operation(
        self, next: worker.NexusOperationInboundInterceptor
    ) -> worker.NexusOperationInboundInterceptor:
        return self.sdk.intercept_nexus_operation(next)

    def workflow_interceptor_class(
        self, input: worker.WorkflowInterceptorClassInput
    ) -> type[worker.WorkflowInboundInterceptor]:
        input.unsafe_extern_functions[SPAN_RECORDER] = self.span_recorder
        return RunSpansInbound

    def span_recorder(self) -> RunSpanRecorder:
        """What a run's ``RunSpansInbound`` records its spans with (its extern function)."""
        return self.recorder
