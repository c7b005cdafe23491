"""Event delivery activities: thin over ``services.events.delivery``."""

from __future__ import annotations

from temporalio import activity

from services.events.delivery import DeliveryService
from temporal.errors import application_errors
from workflows.types.events import (
    DEAD_LETTER_ACTIVITY,
    DELIVER_ACTIVITY,
    DeadLetterInput,
    DeliveryInput,
    DeliveryResult,
)


class EventActivities:
    def __init__(self, deliveries: DeliveryService) -> None:
        self._deliveries = deliveries

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, input: DeliveryInput) -> DeliveryResult:
        """Idempotent: the receipt commits with the handler's effects and the status."""
        with application_errors():
            outcome = await self._deliveries.deliver(
                input.event_id, input.subscriber, input.generation, input.event_type
            )
        return DeliveryResult(outcome=outcome)

    @activity.defn(name=DEAD_LETTER_ACTIVITY)
    async def dead_letter(self, input: DeadLetterInput) -> DeliveryResult:
        """Idempotent: only a pending delivery of this generation becomes a dead letter."""
        outcome = await self._deliveries.dead_letter(
            input.event_id, input.subscriber, input.generation, input.error
        )
        return DeliveryResult(outcome=outcome, error=input.error)
