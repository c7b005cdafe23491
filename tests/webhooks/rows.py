"""Rows the webhook tests share: an ``order.created`` event as the relay hands it to the
``webhooks`` subscriber, a disabled endpoint wanting it, and a delivery read afresh."""

from __future__ import annotations

from core.db import SessionFactory, transaction
from core.events import EventType
from core.ids import IdPrefix, new_id
from models.base import utcnow
from models.webhook_deliveries import WebhookDelivery
from models.webhooks import WebhookEndpoint, WebhookEndpointUpdate
from services.events.subscribers import DomainEvent
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import WebhookEndpointService, new_secret
from services.webhooks.repository import WebhookEndpointRepository

ORDER_CREATED = EventType.ORDER_CREATED


def order_created() -> DomainEvent:
    """A new order's ``order.created``, the first event of its aggregate."""
    order_id = new_id(IdPrefix.ORDER)
    return DomainEvent(
        id=new_id(IdPrefix.EVENT),
        type=ORDER_CREATED,
        aggregate_type="order",
        aggregate_id=order_id,
        seq=1,
        data={"orderId": order_id},
        created_at=utcnow(),
    )


async def disabled_endpoint(sessions: SessionFactory, url: str) -> str:
    """An endpoint wanting ``order.created``, disabled by staff."""
    async with transaction(sessions) as session:
        endpoint = await WebhookEndpointRepository(session).add(
            WebhookEndpoint(url=url, event_types=[ORDER_CREATED], secret=new_secret())
        )
        await WebhookEndpointService(session).update(
            endpoint.id, WebhookEndpointUpdate(enabled=False)
        )
        return endpoint.id


async def delivery_of(sessions: SessionFactory, event_id: str, endpoint_id: str) -> WebhookDelivery:
    """The (event, endpoint) delivery as committed now."""
    async with sessions() as session:
        found = await WebhookDeliveryRepository(session).target(event_id, endpoint_id)
        assert found is not None
        await session.refresh(found[0])
        return found[0]
