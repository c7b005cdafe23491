"""Messages of ``WebhookDeliveryWorkflow``: one (event, endpoint) delivery sent with retries."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from workflows.types.events import DeliveryRetry

# Recorded in every history, so never renamed.
WEBHOOK_DELIVERY_WORKFLOW = "WebhookDeliveryWorkflow"
SEND_ACTIVITY = "webhooks.send"
GIVE_UP_ACTIVITY = "webhooks.give_up"


def webhook_workflow_id(event_id: str, endpoint_id: str, generation: int) -> str:
    """One workflow per delivery and generation (an operator's retry is a new one)."""
    return f"webhook-{event_id}-{endpoint_id}-{generation}"


class WebhookRetry(DeliveryRetry):
    """A delivery's retry timing (the relay's, with a webhook's defaults)."""

    initial_seconds: float = 5.0
    max_interval_seconds: float = 600.0
    max_attempts: int = 8
    # One attempt: the request's timeout plus the time to record it.
    timeout_seconds: float = 15.0


class WebhookSendInput(BaseModel):
    event_id: str
    endpoint_id: str
    generation: int = 0
    retry: WebhookRetry = WebhookRetry()


class GiveUpInput(BaseModel):
    event_id: str
    endpoint_id: str
    generation: int
    error: str


class SendOutcome(StrEnum):
    DELIVERED = "delivered"
    SKIPPED = "skipped"  # already finished, retried since, or its endpoint is gone
    FAILED = "failed"


class SendResult(BaseModel):
    outcome: SendOutcome
    error: str | None = None
