"""Every signal and Update our workflows handle is a span of the run's trace, whichever
workflow task handles it: the run's first (a signal-with-start, an update-with-start) as
well as a later one, replayed from history on a fresh instance; and what a run starts or
signals, and the run it continues as, carry its trace, a local step that a replayed task
schedules again too (``temporal/run_traces.py``, ``temporal/workflow_spans.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from core.settings import Settings
from core.telemetry import ProcessRole, Tracing, tracing_for
from models.fulfillment import ShipmentStatus
from models.returns import ReturnStatus
from temporal.queues import TaskQueue
from temporal.sandbox import workflow_runner
from tests.conftest import start_dev_server
from tests.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.temporal.test_scheduled_run_trace import as_a_worker_connects
from tests.workflows.return_standins import RECEIPT, ReturnStandIns, ended, return_input
from tests.workflows.shipment_standins import (
    DELIVERED,
    PRE,
    PROGRESS_QUERY,
    TRANSIT,
    ParentStandIn,
    ShipmentStandIns,
    parcel,
    until,
    update,
)
from workflows.carts import CartAbandonmentWorkflow
from workflows.returns import ReturnWorkflow
from workflows.shipments import ShipmentWorkflow
from workflows.types.carts import (
    CART_ABANDONMENT_WORKFLOW,
    CART_CHANGED_SIGNAL,
    CART_CLOSED_SIGNAL,
    AbandonmentInput,
)
from workflows.types.fulfillment import (
    CARRIER_UPDATE_SIGNAL,
    FULFILLMENT_WORKFLOW,
    RETURN_WORKFLOW,
    SHIPMENT_PROGRESS_SIGNAL,
    SHIPMENT_WORKFLOW,
    fulfillment_workflow_id,
    return_workflow_id,
    shipment_workflow_id,
)
from workflows.types.returns import APPROVE_UPDATE, RECEIVE_UPDATE, ApproveRequest
from workflows.types.shipments import RECORD_UPDATES_ACTIVITY, ShipmentView


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@dataclass
class Traced:
    """A worker of the cart's, the return's and the parcel's workflows (their steps
    stand-ins), traced as a worker process is, its finished spans kept here; every
    workflow task replays its run from history on a fresh instance (no cache). The
    parcel's stand-in parent runs on a worker of its own (``parents_queue``): on a worker
    with no cache, another run's task evicts a run whose local activity is in flight
    (the SDK cancels it, runs it again on replay, and its tasks were seen to time out
    again and again under load)."""

    client: Client  # traces nothing: the Temporal CLI's, the UI's, a Schedule's start
    traced_client: Client  # traces its calls, as the API's does
    tracing: Tracing
    task_queue: str
    parents_queue: str
    spans: InMemorySpanExporter
    shipments: ShipmentStandIns

    def of_run(self, run_id: str) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans.get_finished_spans()
            if s.attributes and s.attributes.get("temporalRunID") == run_id
        ]


@pytest.fixture(scope="module")
async def own_server() -> AsyncIterator[Client]:
    """A dev server of this module's own: the return's steps run on the ``orders`` queue,
    which other tests' workers poll on the suite's server."""
    env = await start_dev_server()
    try:
        yield env.client
    finally:
        await env.shutdown()


@pytest.fixture
async def traced(own_server: Client, receiver: OtlpReceiver) -> AsyncIterator[Traced]:
    exported = Settings(
        otel_exporter_otlp_endpoint=receiver.endpoint,
        otel_service_name=f"messages-{uuid.uuid4().hex[:8]}",
    )
    tracing = tracing_for(exported, ProcessRole.WORKER)
    assert tracing is not None
    spans = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(spans))
    task_queue = str(TaskQueue.ORDERS)
    traced_client = as_a_worker_connects(own_server, exported)
    parents_queue = f"parents-{uuid.uuid4().hex[:8]}"
    shipments = ShipmentStandIns()
    async with (
        Worker(
            traced_client,
            task_queue=task_queue,
            workflows=[CartAbandonmentWorkflow, ReturnWorkflow, ShipmentWorkflow],
            activities=ReturnStandIns().activities() + shipments.activities(),
            workflow_runner=workflow_runner(),
            max_cached_workflows=0,
        ),
        Worker(
            traced_client,
            task_queue=parents_queue,
            workflows=[ParentStandIn],
            workflow_runner=workflow_runner(),
        ),
    ):
        yield Traced(
            own_server, traced_client, tracing, task_queue, parents_queue, spans, shipments
        )
    assert tracing.flush()


# How long a wait for the worker may take: generous, as the whole suite runs beside it.
WAIT_SECONDS = 60.0


async def after_its_first_task(run: WorkflowHandle[Any, Any]) -> None:
    """Until the run's first workflow task has completed (what is sent next is handled
    in a later one); a minute at most (the suite's load can slow a task down)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        async for event in run.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{run.id}: no workflow task completed")


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def assert_under_the_runs_root(spans: list[ReadableSpan], root_name: str, *names: str) -> None:
    """Each span of ``names`` is made once, a child of the run's one root ``root_name``."""
    root = named(spans, root_name)
    assert root.context is not None
    for name in names:
        span = named(spans, name)
        assert span.parent is not None, name
        assert span.parent.span_id == root.context.span_id, name
        assert span.context is not None
        assert span.context.trace_id == root.context.trace_id, name


async def start_cart(traced: Traced, signal: str) -> WorkflowHandle[Any, Any]:
    """A cart's abandonment run, an hour's delay, started untraced with ``signal``."""
    input = AbandonmentInput(
        cart_id=f"cart_{uuid.uuid4().hex[:8]}", user_id="usr_spans", delay_seconds=3600
    )
    return await traced.client.start_workflow(
        CART_ABANDONMENT_WORKFLOW,
        input,
        id=f"cart-abandonment-{input.cart_id}",
        task_queue=traced.task_queue,
        start_signal=signal,
        execution_timeout=timedelta(minutes=1),
    )


async def test_a_signal_with_an_untraced_start_is_a_span_of_the_runs_trace(
    traced: Traced,
) -> None:
    """The signal comes with the start (the run's first task handles it before the run's
    own code): a span under the run's root all the same."""
    run = await start_cart(traced, CART_CLOSED_SIGNAL)
    assert await run.result() == "closed"
    assert run.result_run_id is not None
    assert_under_the_runs_root(
        traced.of_run(run.result_run_id),
        f"UntracedStart:{CART_ABANDONMENT_WORKFLOW}",
        f"HandleSignal:{CART_CLOSED_SIGNAL}",
        f"RunWorkflow:{CART_ABANDONMENT_WORKFLOW}",
        f"CompleteWorkflow:{CART_ABANDONMENT_WORKFLOW}",
    )


async def test_a_later_signal_is_a_span_of_the_runs_trace_linked_to_its_sender(
    traced: Traced,
) -> None:
    """Signals in later tasks (each replayed on a fresh instance first): under the run's
    root, and a traced sender's linked."""
    run = await start_cart(traced, CART_CHANGED_SIGNAL)
    await after_its_first_task(run)
    await traced.client.get_workflow_handle(run.id).signal(CART_CHANGED_SIGNAL)
    sent = traced.traced_client.get_workflow_handle(run.id)
    with traced.tracing.tracer.start_as_current_span("POST /api/cart/clear") as request:
        await sent.signal(CART_CLOSED_SIGNAL)
    assert await run.result() == "closed"
    assert run.result_run_id is not None
    spans = traced.of_run(run.result_run_id)
    changes = [s for s in spans if s.name == f"HandleSignal:{CART_CHANGED_SIGNAL}"]
    assert len(changes) == 2, [s.name for s in spans]
    assert_under_the_runs_root(
        [s for s in spans if s not in changes[1:]],
        f"UntracedStart:{CART_ABANDONMENT_WORKFLOW}",
        f"HandleSignal:{CART_CHANGED_SIGNAL}",
        f"HandleSignal:{CART_CLOSED_SIGNAL}",
    )
    closed = named(spans, f"HandleSignal:{CART_CLOSED_SIGNAL}")
    signalled = [
        s
        for s in traced.spans.get_finished_spans()
        if s.name == f"SignalWorkflow:{CART_CLOSED_SIGNAL}"
        and s.context is not None
        and s.context.trace_id == request.get_span_context().trace_id
    ]
    assert len(signalled) == 1
    sender = signalled[0].context
    assert sender is not None
    assert [link.context.span_id for link in closed.links] == [sender.span_id]


async def test_updates_with_an_untraced_start_and_later_are_spans_of_the_runs_trace(
    traced: Traced,
) -> None:
    """Staff's approval comes with the return's start (an update-with-start: the run's
    first task validates and handles it), its receipt in a later task."""
    input = return_input()
    start = WithStartWorkflowOperation(
        ReturnWorkflow.run,
        input,
        id=return_workflow_id(input.return_id),
        task_queue=traced.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        execution_timeout=timedelta(minutes=1),
    )
    approved = await traced.client.execute_update_with_start_workflow(
        ReturnWorkflow.approve,
        ApproveRequest(staff_id="usr_staff"),
        start_workflow_operation=start,
    )
    assert approved.status is ReturnStatus.APPROVED
    run = await start.workflow_handle()
    await after_its_first_task(run)
    await run.execute_update(ReturnWorkflow.receive, RECEIPT)
    assert (await ended(run)).status is ReturnStatus.CLOSED
    assert run.result_run_id is not None
    spans = traced.of_run(run.result_run_id)
    assert_under_the_runs_root(
        spans,
        f"UntracedStart:{RETURN_WORKFLOW}",
        f"ValidateUpdate:{APPROVE_UPDATE}",
        f"HandleUpdate:{APPROVE_UPDATE}",
        f"ValidateUpdate:{RECEIVE_UPDATE}",
        f"HandleUpdate:{RECEIVE_UPDATE}",
        f"RunWorkflow:{RETURN_WORKFLOW}",
    )


async def test_what_a_run_starts_signals_and_continues_as_carries_its_trace(
    traced: Traced,
) -> None:
    """A request starts a fulfilment (the parent stand-in) whose parcel is its child; the
    parcel tells its parent of its progress (a signal to an external workflow) and
    continues as new after each carrier update: one trace, each workflow's spans under
    the span that started it, the signal linked to its sending span, a traced query a
    child of the caller's span."""
    sid = f"shp_{uuid.uuid4().hex[:10]}"
    with traced.tracing.tracer.start_as_current_span("POST /api/test") as request:
        parent = await traced.traced_client.start_workflow(
            FULFILLMENT_WORKFLOW,
            parcel(sid, max_updates_per_run=1),
            id=fulfillment_workflow_id(f"ord_{sid}"),
            task_queue=traced.parents_queue,
            execution_timeout=timedelta(minutes=1),
        )
    child = traced.client.get_workflow_handle(shipment_workflow_id(sid), result_type=ShipmentView)
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    first = (await child.describe()).run_id
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT))
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while (await child.describe()).run_id == first:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the parcel's run never continued as new")
        await asyncio.sleep(0.01)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e2", sid, PRE, TRANSIT, DELIVERED))
    assert ShipmentView.model_validate(await parent.result()).status is ShipmentStatus.DELIVERED
    with traced.tracing.tracer.start_as_current_span("GET /api/test") as asked:
        assert await traced.traced_client.get_workflow_handle(parent.id).query(PROGRESS_QUERY)

    trace_id = request.get_span_context().trace_id
    spans = [
        s
        for s in traced.spans.get_finished_spans()
        if s.attributes and s.attributes.get("temporalWorkflowID") in (parent.id, child.id)
    ]
    queried = {f"QueryWorkflow:{PROGRESS_QUERY}", f"HandleQuery:{PROGRESS_QUERY}"}
    assert {s.context.trace_id for s in spans if s.context and s.name not in queried} == {trace_id}
    by_id = {s.context.span_id: s for s in spans if s.context is not None}

    def parent_of(span: ReadableSpan) -> str:
        assert span.parent is not None, span.name
        return by_id[span.parent.span_id].name

    runs = [s for s in spans if s.name == f"RunWorkflow:{SHIPMENT_WORKFLOW}"]
    assert len({s.attributes["temporalRunID"] for s in runs if s.attributes}) == 2
    assert {parent_of(s) for s in runs} == {f"StartChildWorkflow:{SHIPMENT_WORKFLOW}"}
    told = [s for s in spans if s.name == f"HandleSignal:{SHIPMENT_PROGRESS_SIGNAL}"]
    assert told
    for span in told:
        assert [by_id[link.context.span_id].name for link in span.links] == [
            f"SignalExternalWorkflow:{SHIPMENT_PROGRESS_SIGNAL}"
        ]
    query = named(spans, f"HandleQuery:{PROGRESS_QUERY}")
    assert query.context is not None
    assert query.context.trace_id == asked.get_span_context().trace_id
    assert parent_of(query) == f"QueryWorkflow:{PROGRESS_QUERY}"


async def test_a_local_step_retried_in_a_later_task_runs_in_the_runs_trace(
    traced: Traced,
) -> None:
    """The parcel's recording (a local step) fails once; its retry, after a timer, is
    scheduled again in a later workflow task, by the command the replay of the run's
    history made (no cache): it runs in the request's trace all the same."""
    sid = f"shp_{uuid.uuid4().hex[:10]}"
    traced.shipments.hiccups[sid] = 1
    with traced.tracing.tracer.start_as_current_span("POST /api/test") as request:
        parent = await traced.traced_client.start_workflow(
            FULFILLMENT_WORKFLOW,
            parcel(sid),
            id=fulfillment_workflow_id(f"ord_{sid}"),
            task_queue=traced.parents_queue,
            execution_timeout=timedelta(minutes=1),
        )
    child = traced.client.get_workflow_handle(shipment_workflow_id(sid), result_type=ShipmentView)
    await until(child, lambda v: v.status is ShipmentStatus.LABEL_PURCHASED)
    await child.signal(CARRIER_UPDATE_SIGNAL, update("e1", sid, PRE, TRANSIT, DELIVERED))
    assert ShipmentView.model_validate(await parent.result()).status is ShipmentStatus.DELIVERED

    attempts = [
        s
        for s in traced.spans.get_finished_spans()
        if s.name == f"RunActivity:{RECORD_UPDATES_ACTIVITY}"
        and s.attributes
        and s.attributes.get("temporalWorkflowID") == child.id
    ]
    # Two at least: the SDK runs an attempt again if the parcel is evicted while it is
    # in flight (``Traced``).
    assert len(attempts) >= 2
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in attempts if s.context} == {trace_id}
