"""``EventDeliveryWorkflows``: starting one workflow per (event, subscriber) delivery.

The id ``event-{subscriber}-{event_id}-{generation}`` with REJECT_DUPLICATE makes a start
idempotent: a relay that crashed between starting and recording it starts it again, and
Temporal answers "already started", which counts as started. A replay or a restart is a
new generation, hence a new workflow.
"""

from __future__ import annotations

import asyncio
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
    EVENT_DELIVERY_WORKFLOW,
    DeliveryInput,
    DeliveryRef,
    DeliveryRetry,
)

log = logging.getLogger(__name__)

# Starts in flight at once during a relay pass.
CONCURRENT_STARTS = 16


def workflow_id(ref: DeliveryRef) -> str:
    return f"event-{ref.subscriber}-{ref.event_id}-{ref.generation}"


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

    async def start(self, ref: DeliveryRef) -> None:
        """Start the delivery's workflow; one that exists (running or done) counts."""
        client = await self._connection.client()
        try:
            await call(
                client.start_workflow(
                    EVENT_DELIVERY_WORKFLOW,
                    DeliveryInput(**ref.model_dump(), retry=self._retry),
                    id=workflow_id(ref),
                    task_queue=str(TaskQueue.EVENTS),
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    request_eager_start=True,
                    static_summary=(
                        f"{ref.event_type} {ref.event_id} to {ref.subscriber}"
                        + (f" (generation {ref.generation})" if ref.generation else "")
                    ),
                ),
                what=f"delivery {workflow_id(ref)}",
            )
        except WorkflowAlreadyStartedError:
            return

    async def start_all(self, refs: Sequence[DeliveryRef]) -> list[DeliveryRef]:
        """Start each, a few at a time; returns those started (a failure is logged and
        left for the next pass)."""
        gate = asyncio.Semaphore(CONCURRENT_STARTS)
        # Temporal unreachable: the rest would wait for it too (the relay's lock held).
        unavailable = asyncio.Event()

        async def one(ref: DeliveryRef) -> DeliveryRef | None:
            async with gate:
                if unavailable.is_set():
                    return None
                try:
                    await self.start(ref)
                except Exception as exc:
                    if isinstance(exc, DependencyUnavailable):
                        unavailable.set()
                    log.warning(
                        "event delivery not started; the relay tries again",
                        extra={"workflow_id": workflow_id(ref), "error": repr(exc)[:200]},
                    )
                    return None
                return ref

        return [ref for ref in await asyncio.gather(*(one(r) for r in refs)) if ref is not None]

    async def is_running(self, ref: DeliveryRef) -> bool:
        """Whether the delivery's workflow still runs (False if it is gone or closed)."""
        client = await self._connection.client()
        handle = client.get_workflow_handle(workflow_id(ref))
        try:
            description = await call(handle.describe(), what=f"delivery {workflow_id(ref)}")
        except WorkflowNotFound:
            return False
        return description.status == WorkflowExecutionStatus.RUNNING
