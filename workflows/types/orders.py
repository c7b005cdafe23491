"""``OrderWorkflow``'s input, answers and messages, and its activities' inputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from models.orders import OrderStatus

# The workflow's name and its messages' names: recorded in every history, so never renamed.
ORDER_WORKFLOW = "OrderWorkflow"
STATUS_QUERY = "status"
CANCEL_UPDATE = "cancel"
PAYMENT_WEBHOOK_SIGNAL = "payment_webhook"

# Webhooks that may end the wait for 3-D Secure (the workflow then asks the provider).
DECISIVE_WEBHOOKS = frozenset(
    {
        "payment_intent.amount_capturable_updated",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
        "payment_intent.canceled",
    }
)


class StepPolicy(BaseModel):
    """Retry defaults from the seed (3 attempts, 30 s per step); set from settings.

    ``attempts`` counts a step's own failures only: an attempt lost with its worker,
    noticed after ``heartbeat_seconds`` without a heartbeat, is retried uncounted
    (``temporal/attempts.py``)."""

    attempts: int = 3
    timeout_seconds: float = 30.0
    heartbeat_seconds: float = 5.0


class OrderInput(BaseModel):
    order_id: str
    user_id: str
    steps: StepPolicy = StepPolicy()
    reservation_ttl_seconds: float = 900.0
    action_timeout_seconds: float = 900.0
    # How long process-payment keeps trying while the provider is unreachable (since
    # ``authorise-waits-out-outages``; settings' ``authorize_budget_seconds``).
    authorize_timeout_seconds: float = 300.0


class OrderView(BaseModel):
    """The ``status`` query's answer (and the workflow's result), in the API's camelCase
    (``failureCode``, ``nextActionUrl``) for operators reading it in the Temporal UI or
    CLI; snake_case input still parses (histories recorded before say ``failure_code``)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )

    order_id: str
    status: OrderStatus
    failure_code: str | None = None
    next_action_url: str | None = None
    total: int = 0


class PaymentWebhook(BaseModel):
    event_id: str
    type: str
    intent_id: str


class CancelRequest(BaseModel):
    reason: str | None = None


class OrderRef(BaseModel):
    order_id: str


class ReserveInput(BaseModel):
    order_id: str
    ttl_seconds: float


class ExtendInput(BaseModel):
    order_id: str
    until: datetime


class CloseInput(BaseModel):
    order_id: str
    status: OrderStatus
    failure_code: str | None = None
    detail: str | None = None
    data: dict[str, Any] = {}
