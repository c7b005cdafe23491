"""A run a Temporal Schedule starts carries no trace (no client span made the start): its
work is one trace all the same, under a root span of the run's own (``temporal/run_traces.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.worker import Worker

from core.settings import Settings
from core.telemetry import ProcessRole, current_trace_id, tracing_for
from temporal.client import client_interceptors
from temporal.sandbox import workflow_runner
from tests.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.workflows.fulfillment_resets import reset
from workflows.maintenance import OutboxPruneWorkflow
from workflows.types.pruning import (
    OUTBOX_PRUNE_WORKFLOW,
    PruneBatchInput,
    PruneBatchResult,
    PruneInput,
    PruneResult,
)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


class FullBatches:
    """The prune activity's stand-in: ``full`` full batches, then a short one."""

    def __init__(self, full: int) -> None:
        self.left = full

    @activity.defn(name="events.prune_outbox_batch")
    async def prune_outbox_batch(self, input: PruneBatchInput) -> PruneBatchResult:
        if self.left:
            self.left -= 1
            return PruneBatchResult(deleted=input.limit)
        return PruneBatchResult(deleted=0)


async def run_from_a_schedule(client: Client, task_queue: str) -> tuple[str, PruneResult]:
    """Triggers a paused schedule of ``OutboxPruneWorkflow`` once; the run's id and result."""
    schedule = await client.create_schedule(
        f"prune-{task_queue}",
        Schedule(
            action=ScheduleActionStartWorkflow(
                OUTBOX_PRUNE_WORKFLOW,
                PruneInput(batch_size=10, max_batches=10),
                id=f"prune-{task_queue}",
                task_queue=task_queue,
                execution_timeout=timedelta(minutes=1),
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
            state=ScheduleState(paused=True),
        ),
    )
    try:
        await schedule.trigger()
        for _ in range(100):
            actions = (await schedule.describe()).info.recent_actions
            if actions:
                break
            await asyncio.sleep(0.1)
        started = actions[0].action
        assert isinstance(started, ScheduleActionExecutionStartWorkflow)
        run = client.get_workflow_handle(started.workflow_id, run_id=started.first_execution_run_id)
        return started.first_execution_run_id, PruneResult.model_validate(await run.result())
    finally:
        await schedule.delete()


def as_a_worker_connects(client: Client, settings: Settings) -> Client:
    """``client``'s connection with a worker process's interceptors under ``settings``."""
    return Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=client.data_converter,
        interceptors=client_interceptors(settings, ProcessRole.WORKER),
    )


@dataclass
class TracedWorker:
    """A worker of ``OutboxPruneWorkflow`` whose batches are stand-ins (two full, one
    short), traced as a worker process is (``client_interceptors``) by a ``Tracing`` of its
    own that keeps its finished spans here."""

    client: Client  # traces nothing
    traced_client: Client  # the worker's, connected as a worker process is
    task_queue: str
    settings: Settings
    spans: InMemorySpanExporter

    def of_run(self, run_id: str) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans.get_finished_spans()
            if s.attributes and s.attributes.get("temporalRunID") == run_id
        ]


@pytest.fixture
async def worker(
    temporal_client: Client, settings: Settings, receiver: OtlpReceiver
) -> AsyncIterator[TracedWorker]:
    traced = settings.model_copy(
        update={
            "otel_exporter_otlp_endpoint": receiver.endpoint,
            "otel_service_name": f"scheduled-{uuid.uuid4().hex[:8]}",
        }
    )
    tracing = tracing_for(traced, ProcessRole.WORKER)
    assert tracing is not None
    spans = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(spans))
    task_queue = f"scheduled-trace-{uuid.uuid4().hex[:8]}"
    traced_client = as_a_worker_connects(temporal_client, traced)
    async with Worker(
        traced_client,
        task_queue=task_queue,
        workflows=[OutboxPruneWorkflow],
        activities=[FullBatches(2).prune_outbox_batch],
        workflow_runner=workflow_runner(),
        # Every workflow task replays the run from its history on a fresh instance: as
        # after a worker's restart, the later steps must find the run's trace again.
        max_cached_workflows=0,
    ):
        yield TracedWorker(temporal_client, traced_client, task_queue, traced, spans)
    assert tracing.flush()


def assert_one_trace_under(root_name: str, spans: list[ReadableSpan], run_id: str) -> ReadableSpan:
    """``spans`` (a run's) are one trace, the run's, under one root named ``root_name``:
    the run's workflow spans its children, each activity a child of its start."""
    activities = [s for s in spans if s.name == "RunActivity:events.prune_outbox_batch"]
    assert len(activities) == 3, [s.name for s in spans]
    traces = {s.context.trace_id for s in spans if s.context is not None}
    # The run's id is its trace's: an operator finds the trace from the Temporal UI.
    assert traces == {uuid.UUID(run_id).int}, [(s.name, s.context) for s in spans]
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == [root_name]
    root = roots[0]
    assert root.context is not None
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    for step in activities:
        assert step.parent is not None
        start = by_id[step.parent.span_id]
        assert start.name == "StartActivity:events.prune_outbox_batch"
        assert start.parent is not None
        assert start.parent.span_id == root.context.span_id
    runs = [s for s in spans if s.name == f"RunWorkflow:{OUTBOX_PRUNE_WORKFLOW}"]
    assert len(runs) == 1
    assert runs[0].parent is not None
    assert runs[0].parent.span_id == root.context.span_id
    return root


async def run_directly(client: Client, task_queue: str) -> tuple[str, PruneResult]:
    """``OutboxPruneWorkflow`` started by ``client`` (in its current span, if any): the
    run's id and result."""
    run = await client.start_workflow(
        OUTBOX_PRUNE_WORKFLOW,
        PruneInput(batch_size=10),
        id=f"prune-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        execution_timeout=timedelta(minutes=1),
    )
    result = PruneResult.model_validate(await run.result())
    assert run.result_run_id is not None
    return run.result_run_id, result


async def test_a_scheduled_run_is_one_trace_under_a_root_of_its_own(
    worker: TracedWorker,
) -> None:
    run_id, result = await run_from_a_schedule(worker.client, worker.task_queue)
    assert result == PruneResult(deleted=20, batches=3)
    root = assert_one_trace_under(
        f"ScheduledRun:{OUTBOX_PRUNE_WORKFLOW}", worker.of_run(run_id), run_id
    )
    assert root.attributes is not None
    assert root.attributes["temporalScheduleID"] == f"prune-{worker.task_queue}"


async def test_a_run_started_without_a_trace_is_one_trace_too(worker: TracedWorker) -> None:
    """A start from a client that traces nothing (the Temporal CLI's, the UI's)."""
    run_id, result = await run_directly(worker.client, worker.task_queue)
    assert result.batches == 3
    root = assert_one_trace_under(
        f"UntracedStart:{OUTBOX_PRUNE_WORKFLOW}", worker.of_run(run_id), run_id
    )
    assert root.attributes is not None
    assert "temporalScheduleID" not in root.attributes


async def test_a_run_started_in_a_trace_stays_in_it_without_a_root_of_its_own(
    worker: TracedWorker,
) -> None:
    """A request's or a delivery's start: the run joins the caller's trace, as before."""
    tracing = tracing_for(worker.settings, ProcessRole.WORKER)
    assert tracing is not None
    with tracing.tracer.start_as_current_span("POST /api/test") as request:
        run_id, _ = await run_directly(worker.traced_client, worker.task_queue)
    spans = worker.of_run(run_id)
    assert {s.context.trace_id for s in spans if s.context is not None} == {
        request.get_span_context().trace_id
    }
    assert not [s for s in spans if s.name.endswith(f"Start:{OUTBOX_PRUNE_WORKFLOW}")]
    assert not [s for s in spans if s.name.startswith("ScheduledRun:")]


class TraceIdsSeen(FullBatches):
    """The stand-in, noting the trace id each batch ran in (what its log lines carry)."""

    def __init__(self, full: int) -> None:
        super().__init__(full)
        self.trace_ids: list[str | None] = []

    @activity.defn(name="events.prune_outbox_batch")
    async def prune_outbox_batch(self, input: PruneBatchInput) -> PruneBatchResult:
        self.trace_ids.append(current_trace_id())
        return await super().prune_outbox_batch(input)


async def test_without_an_exporter_a_scheduled_runs_steps_carry_its_trace_id(
    temporal_client: Client, settings: Settings
) -> None:
    untraced = settings.model_copy(
        update={"otel_service_name": f"scheduled-{uuid.uuid4().hex[:8]}"}
    )
    tracing = tracing_for(untraced, ProcessRole.WORKER)
    assert tracing is not None
    assert not tracing.exporting
    task_queue = f"scheduled-ids-{uuid.uuid4().hex[:8]}"
    traced_client = as_a_worker_connects(temporal_client, untraced)
    batches = TraceIdsSeen(2)
    async with Worker(
        traced_client,
        task_queue=task_queue,
        workflows=[OutboxPruneWorkflow],
        activities=[batches.prune_outbox_batch],
        workflow_runner=workflow_runner(),
    ):
        run_id, result = await run_from_a_schedule(temporal_client, task_queue)
    assert result.batches == 3
    assert batches.trace_ids == [uuid.UUID(run_id).hex] * 3


async def test_a_reset_run_goes_on_in_its_runs_trace(worker: TracedWorker) -> None:
    """An operator resets an untraced run past its first workflow task: the reset run (a
    new run id) replays that task, so records no root; its spans are under the root the
    run it was reset from recorded, in that run's trace, none an orphan."""
    workflow_id = f"prune-{uuid.uuid4().hex[:8]}"
    run = await worker.client.start_workflow(
        OUTBOX_PRUNE_WORKFLOW,
        PruneInput(batch_size=10),
        id=workflow_id,
        task_queue=worker.task_queue,
        execution_timeout=timedelta(minutes=1),
    )
    assert PruneResult.model_validate(await run.result()).batches == 3
    assert run.result_run_id is not None
    first_run = run.result_run_id
    completed = [
        e.event_id
        async for e in run.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    # Back to the task that took the first batch's result: the second batch is run again.
    await reset(worker.client, workflow_id, completed[1])
    reset_run = worker.client.get_workflow_handle(workflow_id)
    assert PruneResult.model_validate(await reset_run.result()).batches == 2
    reset_run_id = (await reset_run.describe()).run_id
    assert reset_run_id != first_run
    spans = worker.of_run(reset_run_id)
    assert [s for s in spans if s.name == "RunActivity:events.prune_outbox_batch"], spans
    recorded = {s.context.span_id for s in worker.spans.get_finished_spans() if s.context}
    orphans = [s.name for s in spans if s.parent is None or s.parent.span_id not in recorded]
    assert orphans == []
    assert {s.context.trace_id for s in spans if s.context} == {uuid.UUID(first_run).int}
