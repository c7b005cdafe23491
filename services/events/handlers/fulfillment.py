"""Fulfilment's subscribers: ``fulfillment.order_ready`` starts the order's
``FulfillmentWorkflow`` (once), and ``fulfillment.on_hold`` alerts the warehouse staff.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.settings import Settings
from services.email import EmailService
from services.events.subscribers import DomainEvent, Subscriber
from temporal.clients.fulfillment import FulfillmentWorkflows
from workflows.types.fulfillment_orders import FulfillmentInput

ORDER_READY = frozenset({EventType.FULFILLMENT_ORDER_READY})
ON_HOLD = frozenset({EventType.FULFILLMENT_ON_HOLD})
ON_HOLD_TEMPLATE = "fulfillment_on_hold"


def fulfillment_starter(workflows: FulfillmentWorkflows, settings: Settings) -> Subscriber:
    """Start ``FulfillmentWorkflow`` for the order with the event's priority. The start
    is recorded in the delivery's transaction and made before it commits: a failed start
    fails the delivery (retried); a repeated one (a replayed event) finds the workflow
    and starts nothing."""

    async def start_fulfilment(event: DomainEvent, session: AsyncSession) -> None:
        await workflows.start_once(
            session,
            FulfillmentInput(
                order_id=str(event.data["orderId"]),
                priority=int(event.data.get("priority", 0)),
                priority_level=str(event.data.get("priorityLevel", "normal")),
                stall_hours=settings.shipment_stall_hours,
            ),
        )

    return Subscriber("fulfillment_starter", ORDER_READY, start_fulfilment)


def fulfillment_hold_alert(emails: EmailService, settings: Settings) -> Subscriber:
    """Email ``FULFILLMENT_ALERT_EMAIL`` (or ``INVENTORY_ALERT_EMAIL``) with the reason."""
    name = "fulfillment_hold_alert"

    async def email_warehouse(event: DomainEvent, session: AsyncSession) -> None:
        fulfillment_id = str(event.data["fulfillmentId"])
        await emails.deliver(
            # The ledger makes this once-only, even if the provider's answer was lost.
            key=f"{name}:{event.id}",
            template=ON_HOLD_TEMPLATE,
            to=settings.fulfillment_alert_email or settings.inventory_alert_email,
            context={
                "fulfillment_id": fulfillment_id,
                "order_id": str(event.data["orderId"]),
                "reason": str(event.data.get("reason") or ""),
                "staff_url": f"{settings.api_base_url}/api/admin/fulfillments/{fulfillment_id}",
            },
        )

    return Subscriber(name, ON_HOLD, email_warehouse)
