"""``EventDeliveryWorkflow``'s input and result, and its activities' names.

Light on purpose: the relay's client (``temporal.clients.events``) imports it without
loading the workflow, the activities or any service.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

# Recorded in every history, so never renamed.
EVENT_DELIVERY_WORKFLOW = "EventDeliveryWorkflow"
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


class DeliveryStep(StrEnum):
    DELIVERED = "delivered"  # the handler ran (or had run) and the delivery is done
    SKIPPED = "skipped"  # already finished, replayed since, or its subscriber is gone
    FAILED = "failed"  # a dead letter


class DeadLetterInput(DeliveryRef):
    error: str


class DeliveryResult(BaseModel):
    outcome: DeliveryStep
    error: str | None = None
