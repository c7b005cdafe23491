"""Verified provider events: recorded once; the order they may wake is named."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.payments.gateway import WebhookEvent
from models.orders import OrderStatus
from services.order_repository import OrderNotFound, OrderRepository
from services.payments.repository import PaymentRepository
from workflows.types.orders import DECISIVE_WEBHOOKS


@dataclass(frozen=True)
class WebhookOutcome:
    duplicate: bool = False
    # The order whose workflow may be waiting for this event (at the payment step).
    wake_order_id: str | None = None


class WebhookService:
    def __init__(self, session: AsyncSession) -> None:
        self.payments = PaymentRepository(session)
        self.orders = OrderRepository(session)

    async def receive(self, event: WebhookEvent) -> WebhookOutcome:
        """Record a payment event once. The payment's status is refreshed by the workflow
        (which asks the provider), not taken from the webhook's possibly stale copy."""
        if event.intent_id is None:
            return WebhookOutcome()  # not about a payment
        payment = await self.payments.by_intent(event.intent_id)
        if not await self.payments.webhook_seen_first_time(
            event.event_id,
            event.type,
            {"intentId": event.intent_id, "status": event.intent_status},
            payment.id if payment else None,
        ):
            return WebhookOutcome(duplicate=True)
        if event.order_id is None or event.type not in DECISIVE_WEBHOOKS:
            return WebhookOutcome()
        # Only an order waiting for the customer (3-D Secure) waits for a webhook; the
        # others' workflows learn where the payment stands from the provider's answer to
        # the step itself. Waking an order still at ``reserved`` (its authorisation in
        # flight: every card order's first webhook arrives then) cost each order a signal
        # and a workflow task for nothing: the customer can act only on the URL that the
        # authorisation records with ``requires_action``, so their webhook comes after it.
        try:
            status = await self.orders.status_of(event.order_id)
        except OrderNotFound:
            return WebhookOutcome()
        if status is not OrderStatus.REQUIRES_ACTION:
            return WebhookOutcome()
        return WebhookOutcome(wake_order_id=event.order_id)
