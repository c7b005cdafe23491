"""Webhook delivery activities: thin over ``services.webhooks.sending``."""

from __future__ import annotations

from temporalio import activity

from services.webhooks.sending import WebhookSender
from temporal.errors import application_errors
from workflows.types.webhooks import (
    GIVE_UP_ACTIVITY,
    SEND_ACTIVITY,
    GiveUpInput,
    SendOutcome,
    SendResult,
    WebhookSendInput,
)


class WebhookActivities:
    def __init__(self, sender: WebhookSender) -> None:
        self._sender = sender

    @activity.defn(name=SEND_ACTIVITY)
    async def send(self, input: WebhookSendInput) -> SendResult:
        """At least once: a repeat carries the same ``webhook-id``."""
        with application_errors():
            outcome = await self._sender.send(input.event_id, input.endpoint_id, input.generation)
        return SendResult(outcome=outcome)

    @activity.defn(name=GIVE_UP_ACTIVITY)
    async def give_up(self, input: GiveUpInput) -> SendResult:
        """Idempotent: only a pending delivery of this generation becomes failed."""
        failed = await self._sender.give_up(
            input.event_id, input.endpoint_id, input.generation, input.error
        )
        return SendResult(
            outcome=SendOutcome.FAILED if failed else SendOutcome.SKIPPED, error=input.error
        )
