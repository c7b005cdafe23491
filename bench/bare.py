"""``shop bench checkout --compare-bare``: the engine's limit for a pipeline of our shape.

A bare workflow runs the same activities as an order's happy path, counted from a real
order's history (remote activities scheduled on task queues, local activities recorded
as markers), in the same stages (remote activities scheduled by one workflow task run
in parallel; a local activity is a stage of its own, since its marker does not say
whether it ran beside another: the bare workflow runs the order's last local step before
the email it ran beside), each doing nothing. Its worker runs inside the bench process on a scratch
task queue of the stack's own Temporal server, and its workflows are driven the way the
checkout's orders are: N of them, C in flight (closed loop), so the ratio of the two
throughputs is what our business logic, database, providers and API cost on top of what
Temporal needs for the same shape.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import uuid4

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench.stack_cost import BENCH, TEMPORAL, StackProcesses, own_cpu_seconds
from core.settings import Settings

REMOTE, LOCAL = "remote", "local"
# The marker the Temporal SDKs record for a completed local activity.
LOCAL_ACTIVITY_MARKER = "core_local_activity"
BARE_WORKFLOW = "bench.BareWorkflow"
NOOP_ACTIVITY = "bench.noop"
STEP_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class Shape:
    """Stages of activities: each stage's activities run in parallel, stages in turn."""

    stages: tuple[tuple[str, ...], ...]
    source: str = ""  # where the shape was read from

    @property
    def remote(self) -> int:
        return sum(kind == REMOTE for stage in self.stages for kind in stage)

    @property
    def local(self) -> int:
        return sum(kind == LOCAL for stage in self.stages for kind in stage)

    def describe(self) -> str:
        steps = " → ".join("+".join(stage) for stage in self.stages)
        return (
            f"{self.remote + self.local} activities ({self.remote} remote, {self.local} local"
            f"{', from ' + self.source if self.source else ''}): {steps}"
        )


async def shape_of(client: Client, workflow_id: str) -> Shape:
    """The activities a finished workflow ran, in the stages it ran them."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    stages: list[tuple[str, ...]] = []
    batch: list[str] = []  # remote activities scheduled by one workflow task completion
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            if batch:
                stages.append(tuple(batch))
            batch = []
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            batch.append(REMOTE)
        elif (
            event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        ):
            stages.append((LOCAL,))
    if batch:
        stages.append(tuple(batch))
    return Shape(tuple(stages), source=workflow_id)


@activity.defn(name=NOOP_ACTIVITY)
async def noop() -> None:
    """Does nothing: the bare workflow measures the engine alone."""


# Unsandboxed, as OrderWorkflow is: the engine's limit is measured without a cost (the
# sandbox's per-run build) that the order itself no longer pays.
@workflow.defn(name=BARE_WORKFLOW, sandboxed=False)
class BareWorkflow:
    @workflow.run
    async def run(self, stages: list[list[str]]) -> int:
        done = 0
        for stage in stages:
            await asyncio.gather(*(self._one(kind) for kind in stage))
            done += len(stage)
        return done

    async def _one(self, kind: str) -> None:
        if kind == LOCAL:
            await workflow.execute_local_activity(
                NOOP_ACTIVITY, start_to_close_timeout=STEP_TIMEOUT
            )
        else:
            await workflow.execute_activity(NOOP_ACTIVITY, start_to_close_timeout=STEP_TIMEOUT)


@dataclass
class BareResult:
    workflows: int
    concurrency: int
    shape: Shape
    seconds: float
    latencies: list[float] = field(repr=False)
    # CPU seconds in the timed part: the Temporal server's (when the stack runs on this
    # host) and this process's (the bare worker and its clients), by ``bench.stack_cost`` role.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def cpu_per_workflow_ms(self) -> float | None:
        """Every counted process's CPU per workflow (None: the server was not counted)."""
        if TEMPORAL not in self.cpu or not self.latencies:
            return None
        return sum(self.cpu.values()) / len(self.latencies) * 1000

    def lines(self) -> list[str]:
        from bench.checkout import percentile

        def ms(p: int) -> str:
            return f"{percentile(self.latencies, p) * 1000:7.1f} ms"

        return [
            f"bare workflow: {self.workflows} workflows, {self.concurrency} in flight, "
            f"{self.seconds:.1f} s, worker in the bench process, same Temporal server",
            f"  shape: {self.shape.describe()}",
            f"  completed {len(self.latencies)}: {self.per_second:.1f} workflows/s",
            f"  start → completed          p50 {ms(50)}   p95 {ms(95)}   p99 {ms(99)}",
            *self._cpu_lines(),
        ]

    def _cpu_lines(self) -> list[str]:
        total = self.cpu_per_workflow_ms()
        if total is None:
            return []
        per = ", ".join(
            f"{role} {seconds / len(self.latencies) * 1000:.0f} ms"
            for role, seconds in self.cpu.items()
        )
        return [f"  CPU per workflow: {per} (the worker and its clients); all {total:.0f} ms"]


async def run_bare(
    client: Client,
    shape: Shape,
    *,
    workflows: int,
    concurrency: int,
    stack: StackProcesses | None = None,
) -> BareResult:
    """Run ``workflows`` bare workflows of ``shape``, ``concurrency`` at a time; with
    ``stack``, count its Temporal server's CPU and this process's in the timed part."""
    queue = f"bench-bare-{uuid4().hex[:8]}"
    stages = [list(stage) for stage in shape.stages]
    latencies: list[float] = []
    pending = list(range(workflows))

    async def client_loop() -> None:
        while pending:
            n = pending.pop()
            started = time.perf_counter()
            await client.execute_workflow(
                BARE_WORKFLOW, stages, id=f"{queue}-{n:06d}", task_queue=queue
            )
            latencies.append(time.perf_counter() - started)

    async with Worker(client, task_queue=queue, workflows=[BareWorkflow], activities=[noop]):
        server = (
            StackProcesses({TEMPORAL: stack.roles[TEMPORAL]})
            if stack and TEMPORAL in stack.roles
            else None
        )
        server_before = server.cpu_seconds() if server else {}
        bench_before = own_cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        cpu = {BENCH: own_cpu_seconds() - bench_before}
        if server is not None:
            cpu = {TEMPORAL: server.cpu_seconds()[TEMPORAL] - server_before[TEMPORAL], **cpu}
    return BareResult(workflows, concurrency, shape, seconds, latencies, cpu)


def comparison(orders_per_second: float, bare: BareResult) -> str:
    ratio = orders_per_second / bare.per_second if bare.per_second else 0.0
    return (
        f"checkout / bare: {orders_per_second:.1f} orders/s / {bare.per_second:.1f} "
        f"workflows/s = {ratio:.2f}x (target ≥ 0.8x at 20 in flight)"
    )


def cpu_comparison(checkout_cpu_ms: float | None, bare: BareResult) -> list[str]:
    """Where the ratio comes from when both runs keep the cores busy: throughput is then
    the cores over the CPU each unit costs, so ours over the bare's is about the bare
    workflow's CPU over an order's (every process of each run counted, its clients too)."""
    bare_ms = bare.cpu_per_workflow_ms()
    if checkout_cpu_ms is None or bare_ms is None or not checkout_cpu_ms:
        return []
    return [
        f"  CPU: {checkout_cpu_ms:.0f} ms per order (the stack and the bench's clients) / "
        f"{bare_ms:.0f} ms per bare workflow (Temporal server and the bench process): on "
        f"busy cores ours can reach about {bare_ms / checkout_cpu_ms:.2f}x"
    ]


async def compare(
    settings: Settings,
    order_id: str,
    *,
    workflows: int,
    concurrency: int,
    base_url: str | None = None,
) -> BareResult:
    """The bare workflow of ``order_id``'s shape, on the stack's Temporal server (whose
    CPU is counted when ``base_url``'s stack runs on this host)."""
    from bench.stack_cost import stack_processes
    from temporal.client import connect
    from temporal.clients.orders import workflow_id

    client = await connect(settings)
    shape = await shape_of(client, workflow_id(order_id))
    stack = stack_processes(base_url) if base_url else None
    return await run_bare(client, shape, workflows=workflows, concurrency=concurrency, stack=stack)
