"""Payment provider webhooks: verified, recorded once, passed to the order's workflow."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Header, Request
from pydantic import Field

from api.deps import DbSession, State
from api.problems import TEMPORAL_UNAVAILABLE, problem_responses
from api.query_parameters import takes_any_query
from core.errors import WebhookSecretMissing
from integrations.payments.gateway import InvalidSignature
from models.base import CamelModel
from services.payments import WebhookService
from services.refund_failures import RefundFailures
from workflows.types.orders import PaymentWebhook

log = logging.getLogger(__name__)
router = APIRouter(prefix="/payments", tags=["payments"])


class WebhookReceipt(CamelModel):
    received: bool = True
    duplicate: bool = Field(default=False, description="This event id was seen before")


@router.post(
    "/webhooks/stripe",
    summary="Stripe webhook receiver",
    response_model=WebhookReceipt,
    responses=problem_responses(
        InvalidSignature,
        (InvalidSignature, "missing_signature"),
        (InvalidSignature, "invalid_payload"),
        WebhookSecretMissing,
        *TEMPORAL_UNAVAILABLE,
    ),
)
@takes_any_query  # called at the URL the operator gave the provider
async def stripe_webhook(
    request: Request,
    state: State,
    session: DbSession,
    stripe_signature: str = Header(default="", alias="Stripe-Signature", max_length=2000),
) -> WebhookReceipt:
    """Stripe calls this with PaymentIntent events, signed with the endpoint's secret.

    A missing `Stripe-Signature` answers 400 `missing_signature`, a wrong one 400
    `invalid_signature`, a body that is not an event 400 `invalid_payload`. With no
    `STRIPE_WEBHOOK_SECRET` to verify it with (a real `STRIPE_SECRET_KEY` set outside
    production; production does not start without it) the answer is 503
    `webhook_secret_missing`, so Stripe delivers the event again once it is set. Each
    event id is recorded once; a redelivery answers 200 with `duplicate: true` and does
    nothing.
    Events for an order are passed to its workflow as a signal; if Temporal cannot be
    reached the answer is 503 and nothing is recorded, so Stripe delivers it again.
    A refund's `refund.failed` (checked with Stripe) gives the refund's money back to the
    payment's refundable amount and reopens the return it was for (`refundError`), once.
    """
    event = state.payments.verify_webhook(await request.body(), stripe_signature)
    if event.refund_id is not None:
        # First: it locks the return's row and the payment's, as refunds do, before the
        # event's record below references the payment (the order of locks).
        await RefundFailures(session, state.payments).record(event)
    outcome = await WebhookService(session).receive(event)
    if outcome.duplicate:
        return WebhookReceipt(duplicate=True)
    if outcome.wake_order_id is not None and event.intent_id is not None:
        webhook = PaymentWebhook(
            event_id=event.event_id, type=event.type, intent_id=event.intent_id
        )
        if not await state.workflows.orders.notify_payment(outcome.wake_order_id, webhook):
            # The order's workflow has finished: nothing waits for this.
            log.info("webhook for a finished order", extra={"order_id": outcome.wake_order_id})
    return WebhookReceipt()
