"""``EventDeliveryWorkflows``: starting the relay's delivery workflows.

A relay pass starts one ``EventBatchWorkflow`` for the deliveries that may start in that
pass (``DeliveryBatch``: at most ``BATCH_LIMIT`` each, whatever their events). The pass
writes the batch's id (``events-batch-{digest}``) on its rows before it starts it, and
starts with REJECT_DUPLICATE: a relay that crashed between the two starts the same batch
again under the same id, and Temporal answers "already started", which counts as
started. A replay or a restart is a new generation, so a new batch and a new id.

The recorded id (``event_deliveries.workflow_id``) is also how the slow poll asks whether
a delivery's workflow still runs. Deliveries started by the relays of before have an
``EventFanoutWorkflow``'s id (``fanout_id``), or none: theirs is the one-subscriber
``EventDeliveryWorkflow``, named by ``workflow_id(ref)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence

from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.errors import DependencyUnavailable
from core.settings import Settings
from core.telemetry import ProcessRole, span_for_traces, tracing_for
from temporal.clients.connection import TemporalConnection, WorkflowNotFound, call
from temporal.queues import TaskQueue
from workflows.types.events import (
    EVENT_BATCH_WORKFLOW,
    BatchInput,
    DeliveryBatch,
    DeliveryRef,
    DeliveryRetry,
    StartedDelivery,
    SubscriberDelivery,
)

log = logging.getLogger(__name__)

# Starts in flight at once during a relay pass.
CONCURRENT_STARTS = 16
# Events a batch's summary names (the UI shows its summary in one line).
SUMMARY_EVENTS = 3


def workflow_id(ref: DeliveryRef) -> str:
    """The one-subscriber workflow's id, of deliveries started before the fan-out."""
    return f"event-{ref.subscriber}-{ref.event_id}-{ref.generation}"


def fanout_id(event_id: str, deliveries: Sequence[SubscriberDelivery]) -> str:
    """The ``EventFanoutWorkflow``'s id (one event), of deliveries started before the
    batches: the same set of (subscriber, generation) pairs gives the same id."""
    pairs = ",".join(sorted(f"{d.subscriber}:{d.generation}" for d in deliveries))
    return f"events-{event_id}-{hashlib.sha256(pairs.encode()).hexdigest()[:16]}"


def _subscriber(ref: DeliveryRef) -> str:
    return ref.subscriber + (f" (generation {ref.generation})" if ref.generation else "")


def batch_summary(deliveries: Sequence[DeliveryRef]) -> str:
    """What the Temporal UI lists: each event and its subscribers (with the generation
    when it is a replay or a restart), the first ``SUMMARY_EVENTS`` events of a batch."""
    events: dict[str, tuple[str, list[str]]] = {}
    for ref in deliveries:
        events.setdefault(ref.event_id, (ref.event_type, []))[1].append(_subscriber(ref))
    shown = [
        f"{event_type} {event_id} to {', '.join(names)}"
        for event_id, (event_type, names) in list(events.items())[:SUMMARY_EVENTS]
    ]
    more = len(events) - len(shown)
    return "; ".join(shown) + (f"; and {more} more events" if more else "")


def retry_of(settings: Settings) -> DeliveryRetry:
    return DeliveryRetry(
        initial_seconds=settings.event_retry_initial_seconds,
        max_interval_seconds=settings.event_retry_max_interval_seconds,
        max_attempts=settings.event_max_attempts,
        timeout_seconds=settings.event_handler_timeout_seconds,
    )


class EventDeliveryWorkflows:
    def __init__(self, connection: TemporalConnection, settings: Settings) -> None:
        self._connection = connection
        self._retry = retry_of(settings)
        tracing = tracing_for(settings, ProcessRole.WORKER)
        self._tracer = tracing.tracer if tracing is not None else None

    async def start(self, batch: DeliveryBatch) -> None:
        """Start the workflow delivering ``batch``; one that exists (running or done)
        counts. With its events' traces known, the start (and so the workflow and its
        activities) is in their trace, or linked to each (``span_for_traces``)."""
        client = await self._connection.client()
        with (
            span_for_traces(
                self._tracer,
                f"relay {EVENT_BATCH_WORKFLOW}",
                batch.traceparents,
                {"temporalWorkflowID": batch.workflow_id, "shop.deliveries": len(batch.deliveries)},
            ),
            contextlib.suppress(WorkflowAlreadyStartedError),
        ):
            await call(
                client.start_workflow(
                    EVENT_BATCH_WORKFLOW,
                    BatchInput(deliveries=batch.deliveries, retry=self._retry),
                    id=batch.workflow_id,
                    task_queue=str(TaskQueue.EVENTS),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    request_eager_start=True,
                    static_summary=batch_summary(batch.deliveries),
                ),
                what=f"delivery {batch.workflow_id}",
            )

    async def start_all(self, batches: Sequence[DeliveryBatch]) -> list[str]:
        """Start each batch's workflow, a few at a time; returns the ids of those started
        (a failure is logged and left for the next pass)."""
        gate = asyncio.Semaphore(CONCURRENT_STARTS)
        # Temporal unreachable: the rest would wait for it too.
        unavailable = asyncio.Event()

        async def one(batch: DeliveryBatch) -> str | None:
            async with gate:
                if unavailable.is_set():
                    return None
                try:
                    await self.start(batch)
                except Exception as exc:
                    if isinstance(exc, DependencyUnavailable):
                        unavailable.set()
                    log.warning(
                        "event deliveries not started; the relay tries again",
                        extra={
                            "workflow_id": batch.workflow_id,
                            "deliveries": len(batch.deliveries),
                            "error": repr(exc)[:200],
                        },
                    )
                    return None
                return batch.workflow_id

        started = await asyncio.gather(*(one(batch) for batch in batches))
        return [wid for wid in started if wid is not None]

    async def is_running(self, delivery: StartedDelivery) -> bool:
        """Whether the delivery's workflow still runs (False if it is gone or closed)."""
        wid = delivery.workflow_id or workflow_id(delivery)
        client = await self._connection.client()
        try:
            description = await call(
                client.get_workflow_handle(wid).describe(), what=f"delivery {wid}"
            )
        except WorkflowNotFound:
            return False
        return description.status == WorkflowExecutionStatus.RUNNING
