"""``EventDeliveryWorkflows``: starting the relay's delivery workflows.

A relay pass starts one ``EventFanoutWorkflow`` per event, for every subscriber of it
whose delivery may start in that pass. Its id, ``events-{event_id}-{digest}``, names the
event and digests the sorted (subscriber, generation) pairs it delivers; with
REJECT_DUPLICATE that makes a start idempotent: a relay that crashed between starting and
recording it starts the same set again, and Temporal answers "already started", which
counts as started. A subscriber whose line was held back is started by a later pass, in
a set of its own; a replay or a restart is a new generation: either way a new id.

The pass records each delivery's workflow id (``event_deliveries.workflow_id``), which is
how the slow poll asks whether a delivery's workflow still runs. Deliveries started
before the ids were recorded have none: theirs is the one-subscriber
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
from temporal.clients.connection import TemporalConnection, WorkflowNotFound, call
from temporal.queues import TaskQueue
from workflows.types.events import (
    EVENT_FANOUT_WORKFLOW,
    DeliveryRef,
    DeliveryRetry,
    FanoutInput,
    StartedDelivery,
    SubscriberDelivery,
)

log = logging.getLogger(__name__)

# Starts in flight at once during a relay pass.
CONCURRENT_STARTS = 16


def workflow_id(ref: DeliveryRef) -> str:
    """The one-subscriber workflow's id, of deliveries started before the fan-out."""
    return f"event-{ref.subscriber}-{ref.event_id}-{ref.generation}"


def fanout_id(event_id: str, deliveries: Sequence[SubscriberDelivery]) -> str:
    """The same set of (subscriber, generation) pairs gives the same id, in any order."""
    pairs = ",".join(sorted(f"{d.subscriber}:{d.generation}" for d in deliveries))
    return f"events-{event_id}-{hashlib.sha256(pairs.encode()).hexdigest()[:16]}"


def fanout_summary(event_id: str, event_type: str, deliveries: Sequence[SubscriberDelivery]) -> str:
    """What the Temporal UI lists: the event and each subscriber (with its generation
    when it is a replay or a restart)."""
    names = [
        d.subscriber + (f" (generation {d.generation})" if d.generation else "") for d in deliveries
    ]
    return f"{event_type} {event_id} to {', '.join(names)}"


def retry_of(settings: Settings) -> DeliveryRetry:
    return DeliveryRetry(
        initial_seconds=settings.event_retry_initial_seconds,
        max_interval_seconds=settings.event_retry_max_interval_seconds,
        max_attempts=settings.event_max_attempts,
        timeout_seconds=settings.event_handler_timeout_seconds,
    )


def by_event(refs: Sequence[DeliveryRef]) -> list[list[DeliveryRef]]:
    """``refs`` grouped by event, in the order of each event's first delivery."""
    groups: dict[str, list[DeliveryRef]] = {}
    for ref in refs:
        groups.setdefault(ref.event_id, []).append(ref)
    return list(groups.values())


class EventDeliveryWorkflows:
    def __init__(self, connection: TemporalConnection, settings: Settings) -> None:
        self._connection = connection
        self._retry = retry_of(settings)

    async def start(self, refs: Sequence[DeliveryRef]) -> str:
        """Start the workflow delivering ``refs`` (deliveries of one event); one that
        exists (running or done) counts. Returns its id."""
        first = refs[0]
        assert all(r.event_id == first.event_id for r in refs), "one event per workflow"
        deliveries = [
            SubscriberDelivery(subscriber=r.subscriber, generation=r.generation) for r in refs
        ]
        wid = fanout_id(first.event_id, deliveries)
        client = await self._connection.client()
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await call(
                client.start_workflow(
                    EVENT_FANOUT_WORKFLOW,
                    FanoutInput(
                        event_id=first.event_id,
                        event_type=first.event_type,
                        deliveries=deliveries,
                        retry=self._retry,
                    ),
                    id=wid,
                    task_queue=str(TaskQueue.EVENTS),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    request_eager_start=True,
                    static_summary=fanout_summary(first.event_id, first.event_type, deliveries),
                ),
                what=f"delivery {wid}",
            )
        return wid

    async def start_all(self, refs: Sequence[DeliveryRef]) -> list[StartedDelivery]:
        """Start one workflow per event, a few at a time; returns the deliveries started
        (a failure is logged and left for the next pass)."""
        gate = asyncio.Semaphore(CONCURRENT_STARTS)
        # Temporal unreachable: the rest would wait for it too (the relay's lock held).
        unavailable = asyncio.Event()

        async def one(group: list[DeliveryRef]) -> list[StartedDelivery]:
            async with gate:
                if unavailable.is_set():
                    return []
                try:
                    wid = await self.start(group)
                except Exception as exc:
                    if isinstance(exc, DependencyUnavailable):
                        unavailable.set()
                    log.warning(
                        "event delivery not started; the relay tries again",
                        extra={
                            "event_id": group[0].event_id,
                            "subscribers": [r.subscriber for r in group],
                            "error": repr(exc)[:200],
                        },
                    )
                    return []
                return [StartedDelivery(**r.model_dump(), workflow_id=wid) for r in group]

        started = await asyncio.gather(*(one(group) for group in by_event(refs)))
        return [delivery for group in started for delivery in group]

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
