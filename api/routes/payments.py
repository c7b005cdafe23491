"""Payment provider webhooks: verified, recorded once, passed to the order's workflow."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import stripe
from fastapi import APIRouter, Header, Request
from pydantic import Field
from sqlmodel import select
from temporalio.service import RPCError, RPCStatusCode

from api.deps import DbSession, State
from api.problems import problem_responses
from core.errors import DependencyUnavailable, ShopError
from models.base import CamelModel
from models.orders import Order, OrderStatus
from services.payments import WebhookService
from workflows.orders import DECISIVE_WEBHOOKS, OrderWorkflow, PaymentWebhook, workflow_id

log = logging.getLogger(__name__)
router = APIRouter(prefix="/payments", tags=["payments"])
SIGNAL_WAIT_SECONDS = 5.0


class InvalidSignature(ShopError):
    code = "invalid_signature"
    title = "The webhook signature does not verify"


class WebhookReceipt(CamelModel):
    received: bool = True
    duplicate: bool = Field(default=False, description="This event id was seen before")


@router.post(
    "/webhooks/stripe",
    summary="Stripe webhook receiver",
    response_model=WebhookReceipt,
    responses=problem_responses(400, 503),
)
async def stripe_webhook(
    request: Request,
    state: State,
    session: DbSession,
    stripe_signature: str = Header(default="", alias="Stripe-Signature", max_length=2000),
) -> WebhookReceipt:
    """Stripe calls this with PaymentIntent events, signed with the endpoint's secret.

    A missing or wrong `Stripe-Signature` answers 400 `invalid_signature`. Each event id
    is recorded once; a redelivery answers 200 with `duplicate: true` and does nothing.
    Events for an order are passed to its workflow as a signal; if Temporal cannot be
    reached the answer is 503 and nothing is recorded, so Stripe delivers it again.
    """
    secret = state.settings.resolved_stripe_webhook_secret
    payload = await request.body()
    if secret is None:
        raise DependencyUnavailable("STRIPE_WEBHOOK_SECRET is not configured")
    try:
        event = stripe.Webhook.construct_event(payload, stripe_signature, secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise InvalidSignature(str(exc)[:200]) from exc
    obj: dict[str, Any] = event["data"]["object"].to_dict()
    if obj.get("object") != "payment_intent":
        return WebhookReceipt()
    if not await WebhookService(session).record(event["id"], event["type"], obj):
        return WebhookReceipt(duplicate=True)
    order_id = (obj.get("metadata") or {}).get("order_id")
    if order_id and event["type"] in DECISIVE_WEBHOOKS and await _at_payment(session, order_id):
        # Only an order at the payment step can be waiting for the customer (3-D
        # Secure); the others' workflows learn where the payment stands from Stripe.
        await _signal(
            state,
            order_id,
            PaymentWebhook(event_id=event["id"], type=event["type"], intent_id=str(obj["id"])),
        )
    return WebhookReceipt()


async def _at_payment(session: DbSession, order_id: str) -> bool:
    status = (await session.exec(select(Order.status).where(Order.id == order_id))).first()
    return status in (OrderStatus.RESERVED, OrderStatus.REQUIRES_ACTION)


async def _signal(state: State, order_id: str, webhook: PaymentWebhook) -> None:
    try:
        client = await asyncio.wait_for(state.temporal.get(), SIGNAL_WAIT_SECONDS)
        handle = client.get_workflow_handle_for(OrderWorkflow.run, workflow_id(order_id))
        await asyncio.wait_for(
            handle.signal(OrderWorkflow.payment_webhook, webhook), SIGNAL_WAIT_SECONDS
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            # The order's workflow has finished (or is unknown): nothing waits for this.
            log.info("webhook for a finished order", extra={"order_id": order_id})
            return
        raise DependencyUnavailable("cannot reach the order workflow") from exc
    except (TimeoutError, OSError) as exc:
        raise DependencyUnavailable("cannot reach the order workflow") from exc
