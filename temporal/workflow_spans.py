"""The workflow side of our tracing: a span for each thing a run does or is sent, in the
run's trace, on the SDK's public interceptor API only (``temporal/run_traces.py`` is the
worker's side, outside the sandbox, that makes the spans).

The SDK's ``TracingWorkflowInboundInterceptor`` finds a run's trace only in the header
its start carried (``workflow.info().headers``), and customising where it finds it meant
overriding its private members (a silent break on an SDK upgrade). This one asks the
worker for the run's parent once per workflow instance, whichever of the run's handlers
comes first: the run's own code, or a signal, an Update or its validator that the task
delivers before it (a signal-with-start's, an update-with-start's: the SDK runs their
handlers first in the run's first task, where the SDK's interceptor, which loaded the
trace in ``execute_workflow``, made them no span for a run started without a trace).

The spans are the SDK's, by name, kind and attributes (``temporalWorkflowID``,
``temporalRunID``): ``RunWorkflow``, ``HandleSignal``, ``ValidateUpdate``,
``HandleUpdate`` (with ``temporalUpdateID``), ``HandleQuery`` (only for a query that
carries a trace, as its child), ``CompleteWorkflow``, and for what the run starts
``StartActivity`` (local ones too), ``StartChildWorkflow``, ``SignalChildWorkflow``,
``SignalExternalWorkflow``, whose headers carry the new span to the activity or the
workflow; a continue-as-new carries the run's parent to the next run. Each is an instant
(ended at once: a replay never leaves one open) made only when the task is not a replay
(a query's, on every answer); what a replay starts carries the run's parent instead, as a
local activity's retry scheduled from a replayed command still runs. A signal's or an
Update's span is linked to its sender's span. An Update that fails fails the Update, not
the run: no ``CompleteWorkflow`` for it (the SDK made one). Nexus operations, which no
workflow of ours starts, get no span. Nothing here adds a command to the run's history.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, cast

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import FailureError
from temporalio.worker import (
    ContinueAsNewInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    SignalChildWorkflowInput,
    SignalExternalWorkflowInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
)

Headers = Mapping[str, Payload]
# The extern function (run outside the sandbox) that gives a run the worker's recorder.
SPAN_RECORDER = "shopweave_span_recorder"
# Set by the Temporal server on each run a Schedule starts.
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")


@dataclass(frozen=True)
class RunStart:
    """What the worker needs to find a run's parent span."""

    headers: Headers  # the start's: the trace it carried, if any
    workflow_type: str
    workflow_id: str
    # The run whose trace this is when its start carried none: the run itself, or for a
    # run reset by an operator the run it was reset from (whose first task recorded the
    # root).
    run_id: str
    schedule_id: str | None
    time_ns: int
    # The run's first workflow task (not a replay of the run's history: a worker that lost
    # the run from its cache, or took it over), and not a reset run's: the root span is
    # recorded now (again if that task failed and runs again, as RunWorkflow is).
    first_task: bool


@dataclass(frozen=True)
class WorkflowSpan:
    name: str
    kind: SpanKind
    parent: Context
    attributes: Mapping[str, str]
    time_ns: int
    linked: Context | None = None  # the sender's span (a signal's, an Update's)
    exception: BaseException | None = None
    # An outbound call's headers, to carry the new span to what it starts.
    headers: Headers | None = None


class SpanRecorder(Protocol):
    """The worker's side (``temporal/run_traces.py``)."""

    def run_parent(self, run: RunStart) -> Context:
        """The context a run's workflow spans are children of."""
        ...

    def trace_of(self, headers: Headers) -> Context | None:
        """The span a call's headers carry (its sender's), if any."""
        ...

    def with_trace(self, headers: Headers, context: Context) -> Headers:
        """``headers`` carrying ``context``'s span."""
        ...

    def record(self, span: WorkflowSpan) -> Headers | None:
        """Records ``span``; ``span.headers`` carrying it, when given."""
        ...


@contextmanager
def attached(context: Context) -> Iterator[None]:
    """``context`` current for the block (a log line's trace id inside the run's code).
    Detached only where it is still current: a handler abandoned by an evicted workflow
    is finalised wherever garbage collection runs, where there is nothing to detach."""
    token = otel_context.attach(context)
    try:
        yield
    finally:
        if otel_context.get_current() is context:
            otel_context.detach(token)


class RunSpansInbound(WorkflowInboundInterceptor):
    """One per workflow instance: its run's spans, under the run's parent."""

    def __init__(self, next: WorkflowInboundInterceptor) -> None:
        super().__init__(next)
        self.__recorder = cast(SpanRecorder, workflow.extern_functions()[SPAN_RECORDER]())
        self.__parent: Context | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(RunSpansOutbound(outbound, self))

    def run_parent(self) -> Context:
        """The run's parent span: asked for by the first of the run's handlers to run."""
        if self.__parent is None:
            info = workflow.info()
            # A reset keeps the run's started event, and with it the first run's id here.
            traced_as = info.original_execution_run_id or info.run_id
            self.__parent = self.__recorder.run_parent(
                RunStart(
                    headers=info.headers,
                    workflow_type=info.workflow_type,
                    workflow_id=info.workflow_id,
                    run_id=traced_as,
                    schedule_id=info.typed_search_attributes.get(SCHEDULED_BY),
                    time_ns=workflow.time_ns(),
                    first_task=traced_as == info.run_id and not workflow.unsafe.is_replaying(),
                )
            )
        return self.__parent

    def record(
        self,
        name: str,
        kind: SpanKind,
        *,
        parent: Context | None = None,
        sender: Headers | None = None,
        linked: Context | None = None,
        exception: BaseException | None = None,
        headers: Headers | None = None,
        update_id: str | None = None,
        on_replay: bool = False,
    ) -> Headers | None:
        """A span named ``name`` under ``parent`` (the run's parent by default), unless the
        task replays history; ``headers`` carrying it, or on a replay the run's parent.

        A command a replay makes is matched to the history's and not sent again, but a
        local activity's can still run: its retry, scheduled after a timer that fires in
        a later task from the handle the replay made (a worker with no cache, or one that
        lost the run from it), and an attempt whose marker the history lacks (the SDK
        completed the task it ran in without it). Without a trace in its headers it
        would be a trace of its own."""
        if workflow.unsafe.is_replaying() and not on_replay:
            return None if headers is None else self.with_run_trace(headers)
        info = workflow.info()
        attributes = {"temporalWorkflowID": info.workflow_id, "temporalRunID": info.run_id}
        if update_id is not None:
            attributes["temporalUpdateID"] = update_id
        if sender is not None:
            linked = self.__recorder.trace_of(sender)
        return self.__recorder.record(
            WorkflowSpan(
                name=name,
                kind=kind,
                parent=self.run_parent() if parent is None else parent,
                attributes=attributes,
                time_ns=workflow.time_ns(),
                linked=linked,
                exception=exception,
                headers=headers,
            )
        )

    def with_run_trace(self, headers: Headers) -> Headers:
        return self.__recorder.with_trace(headers, self.run_parent())

    @contextmanager
    def handling(self, *, completes: bool, ends_run_on_failure: bool = True) -> Iterator[None]:
        """The run's parent current while a handler runs; ``CompleteWorkflow`` when it
        completes the run (``completes``: the run's own code) or fails it."""
        with attached(self.run_parent()):
            try:
                yield
            except FailureError as err:
                if ends_run_on_failure:
                    self.record(self.__completed(), SpanKind.INTERNAL, exception=err)
                raise
            if completes:
                self.record(self.__completed(), SpanKind.INTERNAL)

    @staticmethod
    def __completed() -> str:
        return f"CompleteWorkflow:{workflow.info().workflow_type}"

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        with self.handling(completes=True):
            self.record(f"RunWorkflow:{workflow.info().workflow_type}", SpanKind.SERVER)
            return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        with self.handling(completes=False):
            self.record(f"HandleSignal:{input.signal}", SpanKind.SERVER, sender=input.headers)
            await super().handle_signal(input)

    @contextmanager
    def __handling_update(self, step: str, input: HandleUpdateInput) -> Iterator[None]:
        # An Update's failure fails the Update, not the run.
        with self.handling(completes=False, ends_run_on_failure=False):
            self.record(
                f"{step}:{input.update}", SpanKind.SERVER, sender=input.headers, update_id=input.id
            )
            yield

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        with self.__handling_update("ValidateUpdate", input):
            super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        with self.__handling_update("HandleUpdate", input):
            return await super().handle_update_handler(input)

    async def handle_query(self, input: HandleQueryInput) -> Any:
        # Only a query that carries a trace, as its child: what the handler reads is not
        # the run's work. Linked to the run's parent, once known (a query never comes
        # first: its instance replayed the run's history before).
        sender = self.__recorder.trace_of(input.headers)
        if sender is None:
            return await super().handle_query(input)
        with attached(sender):
            self.record(
                f"HandleQuery:{input.query}",
                SpanKind.SERVER,
                parent=sender,
                linked=self.__parent,
                on_replay=True,
            )
            return await super().handle_query(input)


class RunSpansOutbound(WorkflowOutboundInterceptor):
    """What the run starts or signals: a span, carried in the call's headers."""

    def __init__(self, next: WorkflowOutboundInterceptor, run: RunSpansInbound) -> None:
        super().__init__(next)
        self.__run = run

    def __carried(self, name: str, kind: SpanKind, headers: Headers) -> Headers:
        carried = self.__run.record(name, kind, headers=headers)
        return headers if carried is None else carried

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        input.headers = self.__run.with_run_trace(input.headers)
        super().continue_as_new(input)

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self.__carried(
            f"StartActivity:{input.activity}", SpanKind.CLIENT, input.headers
        )
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self.__carried(
            f"StartActivity:{input.activity}", SpanKind.CLIENT, input.headers
        )
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self.__carried(
            f"StartChildWorkflow:{input.workflow}", SpanKind.CLIENT, input.headers
        )
        return await super().start_child_workflow(input)

    async def signal_child_workflow(self, input: SignalChildWorkflowInput) -> None:
        input.headers = self.__carried(
            f"SignalChildWorkflow:{input.signal}", SpanKind.CLIENT, input.headers
        )
        await super().signal_child_workflow(input)

    async def signal_external_workflow(self, input: SignalExternalWorkflowInput) -> None:
        input.headers = self.__carried(
            f"SignalExternalWorkflow:{input.signal}", SpanKind.CLIENT, input.headers
        )
        await super().signal_external_workflow(input)
