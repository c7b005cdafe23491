"""``webhooks``: every event an enabled webhook endpoint wants becomes one delivery per
such endpoint, each sent by its own ``WebhookDeliveryWorkflow``.

The deliveries and their workflow starts are written in the relay's delivery
transaction, so the relay's receipt makes this happen once per event; each delivery's
workflow then retries on its own, so one slow or failing endpoint never holds back this
subscriber's line (the next events of the aggregate) or another endpoint.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from services.events.subscribers import DomainEvent, Subscriber
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import INTERNAL_TYPES
from services.webhooks.signing import envelope
from temporal.clients.webhooks import WebhookWorkflows

NAME = "webhooks"
EVENT_TYPES = frozenset(t for t in EventType if t not in INTERNAL_TYPES)


def webhooks_subscriber(workflows: WebhookWorkflows) -> Subscriber:
    async def record_deliveries(event: DomainEvent, session: AsyncSession) -> None:
        deliveries = WebhookDeliveryRepository(session)
        payload = envelope(str(event.type), event.created_at, event.data)
        for endpoint in await deliveries.endpoints_wanting(str(event.type)):
            await deliveries.add_once(
                endpoint_id=endpoint.id,
                event_id=event.id,
                event_type=str(event.type),
                payload=payload,
            )
            await workflows.start_in(session, workflows.input(event.id, endpoint.id, 0))

    return Subscriber(NAME, EVENT_TYPES, record_deliveries)
