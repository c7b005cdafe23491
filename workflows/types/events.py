"""The event delivery workflows' inputs and results, and their activities' names.

``EventFanoutWorkflow`` delivers one event to every subscriber whose delivery the relay
started in one pass; ``EventDeliveryWorkflow`` (one subscriber) is what the relay started
before it, kept for the runs and histories it left.

Light on purpose: the relay's client (``temporal.clients.events``) imports it without
loading the workflow, the activities or any service.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

# Recorded in every history, so never renamed.
EVENT_DELIVERY_WORKFLOW = "EventDeliveryWorkflow"
EVENT_FANOUT_WORKFLOW = "EventFanoutWorkflow"
DELIVER_ACTIVITY = "events.deliver"
DEAD_LETTER_ACTIVITY = "events.dead_letter"


class DeliveryRetry(BaseModel):
    """Retry timing, decided by the starter from settings (workflows read no config)."""

    initial_seconds: float = 1.0
    max_interval_seconds: float = 300.0
    # The handler's own failures; an attempt lost with its worker does not count.
    max_attempts: int = 10
    timeout_seconds: float = 60.0


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
