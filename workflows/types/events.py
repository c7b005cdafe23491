"""The event delivery workflows' inputs and results, and their activities' names.

``EventBatchWorkflow`` delivers every delivery the relay started in one pass (any
events, any subscribers, at most ``BATCH_LIMIT``); ``EventFanoutWorkflow`` (one event)
and ``EventDeliveryWorkflow`` (one subscriber) are what the relay started before it,
kept for the runs and histories they left.

Light on purpose: the relay's client (``temporal.clients.events``) imports it without
loading the workflow, the activities or any service.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel
from temporalio.common import RetryPolicy

# Recorded in every history, so never renamed.
EVENT_DELIVERY_WORKFLOW = "EventDeliveryWorkflow"
EVENT_FANOUT_WORKFLOW = "EventFanoutWorkflow"
EVENT_BATCH_WORKFLOW = "EventBatchWorkflow"
DELIVER_ACTIVITY = "events.deliver"
DEAD_LETTER_ACTIVITY = "events.dead_letter"


class DeliveryRetry(BaseModel):
    """Retry timing, decided by the starter from settings (workflows read no config)."""

    initial_seconds: float = 1.0
    max_interval_seconds: float = 300.0
    # The handler's own failures; an attempt lost with its worker does not count.
    max_attempts: int = 10
    timeout_seconds: float = 60.0

    def policy(self) -> RetryPolicy:
        """Exponential backoff (doubling) from ``initial_seconds`` up to the ceiling."""
        return RetryPolicy(
            initial_interval=timedelta(seconds=self.initial_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=self.max_interval_seconds),
            maximum_attempts=self.max_attempts,
        )

    @property
    def timeout(self) -> timedelta:
        """One attempt's start-to-close timeout."""
        return timedelta(seconds=self.timeout_seconds)


class DeliveryRef(BaseModel):
    """One (event, subscriber) delivery, as the relay started it."""

    event_id: str
    subscriber: str
    # A replay or a restart bumps it: a late attempt of an older run changes nothing.
    generation: int = 0
    event_type: str


class DeliveryInput(DeliveryRef):
    retry: DeliveryRetry = DeliveryRetry()


class StartedDelivery(DeliveryRef):
    """A delivery and the workflow delivering it (None: started before the relay recorded
    workflow ids, by the one-subscriber workflow whose id ``DeliveryRef`` names)."""

    workflow_id: str | None = None
    # Its event's: with the subscriber, where the lost-delivery sweep has got to.
    seq: int = 0


class SubscriberDelivery(BaseModel):
    subscriber: str
    generation: int = 0


class FanoutInput(BaseModel):
    """One event's deliveries that the relay started in one pass, one per subscriber."""

    event_id: str
    event_type: str
    deliveries: list[SubscriberDelivery]
    retry: DeliveryRetry = DeliveryRetry()

    def delivery(self, to: SubscriberDelivery) -> DeliveryInput:
        return DeliveryInput(
            event_id=self.event_id,
            subscriber=to.subscriber,
            generation=to.generation,
            event_type=self.event_type,
            retry=self.retry,
        )


class DeliveryStep(StrEnum):
    DELIVERED = "delivered"  # the handler ran (or had run) and the delivery is done
    SKIPPED = "skipped"  # already finished, replayed since, or its subscriber is gone
    FAILED = "failed"  # a dead letter


class DeadLetterInput(DeliveryRef):
    error: str


class DeliveryResult(BaseModel):
    outcome: DeliveryStep
    error: str | None = None


class FanoutResult(BaseModel):
    # subscriber -> how its delivery ended
    outcomes: dict[str, DeliveryResult]


# Deliveries in one batch workflow: its history stays small (two markers per delivery).
BATCH_LIMIT = 100


class DeliveryBatch(BaseModel):
    """Deliveries the relay starts together, and the id of the workflow delivering them."""

    workflow_id: str
    deliveries: list[DeliveryRef]
    # The W3C traceparents its events were written in (when the relay traces): the
    # batch's workflow joins that trace, or links to each (not part of its input).
    traceparents: list[str] = []

    @classmethod
    def of(cls, deliveries: Sequence[DeliveryRef]) -> DeliveryBatch:
        """Its id digests the sorted (event, subscriber, generation) triples: the same
        deliveries give the same id, in any order, and a replay or a restart (a new
        generation) a new one."""
        triples = sorted(f"{d.event_id}:{d.subscriber}:{d.generation}" for d in deliveries)
        digest = hashlib.sha256(",".join(triples).encode()).hexdigest()[:20]
        return cls(workflow_id=f"events-batch-{digest}", deliveries=list(deliveries))


def batches_of(deliveries: Sequence[DeliveryRef]) -> list[DeliveryBatch]:
    """``deliveries`` in batches of at most ``BATCH_LIMIT``, in their order."""
    return [
        DeliveryBatch.of(deliveries[i : i + BATCH_LIMIT])
        for i in range(0, len(deliveries), BATCH_LIMIT)
    ]


class BatchInput(BaseModel):
    """Deliveries the relay started in one pass; no two of one (aggregate, subscriber)
    line, since only a line's head starts."""

    deliveries: list[DeliveryRef]
    retry: DeliveryRetry = DeliveryRetry()

    def delivery(self, ref: DeliveryRef) -> DeliveryInput:
        return DeliveryInput(**ref.model_dump(), retry=self.retry)


class BatchResult(BaseModel):
    # event id -> subscriber -> how its delivery ended
    outcomes: dict[str, dict[str, DeliveryResult]]
