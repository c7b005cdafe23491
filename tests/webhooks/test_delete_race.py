"""Staff delete an endpoint while the sender gives one of its deliveries up: both finish.

The give-up writes the delivery (failed), then the endpoint's run of failures, in one
transaction. The ``DELETE`` locked the endpoint's row and then, by its cascade, the
delivery's: each waited for the other, PostgreSQL broke the deadlock by failing one (the
``DELETE`` answered 500; found sending the README's *Outgoing webhooks* block, whose
``retry-failed`` left a delivery in flight when the endpoint was deleted). The
interleaving is made at the row locks (``tests.lock_waits``), not by sleeping.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.settings import Settings
from models.webhooks import WebhookEndpoint
from services.webhooks.delivery_repository import WebhookDeliveryRepository
from services.webhooks.endpoints import WebhookEndpointService, new_secret
from services.webhooks.repository import WebhookEndpointRepository
from services.webhooks.sending import WebhookSender, webhook_client
from tests.lock_waits import waiting_on_locks
from tests.webhooks.rows import delivery_of, order_created

# A hang guard only: each wait ends as soon as the other side has moved.
GUARD_SECONDS = 30


async def test_an_endpoint_deleted_while_a_delivery_of_it_is_given_up(
    engine: AsyncEngine, settings: Settings, made: list[str]
) -> None:
    sessions = create_session_factory(engine)
    event = order_created()
    async with transaction(sessions) as session:
        endpoint = await WebhookEndpointRepository(session).add(
            # A type no event has: the relay of a parallel test adds no delivery to it.
            WebhookEndpoint(
                url="https://hooks.example.com/gone", event_types=["test.none"], secret=new_secret()
            )
        )
        await WebhookDeliveryRepository(session).add_once(
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.type,
            payload={"type": event.type, "timestamp": "t", "data": event.data},
        )
    made.append(endpoint.id)
    delivery = await delivery_of(sessions, event.id, endpoint.id)

    async def delete() -> None:
        async with transaction(sessions) as session:
            await WebhookEndpointService(session).delete(endpoint.id)

    async with webhook_client(settings) as http:
        sender = WebhookSender(sessions, http, settings)
        # Something holds the delivery's row (a retry being recorded, say): the give-up
        # queues for it first, then the DELETE.
        async with transaction(sessions) as holder:
            assert await WebhookDeliveryRepository(holder).get(delivery.id) is not None
            give_up = asyncio.create_task(
                sender.give_up(event.id, endpoint.id, 0, "webhook_rejected: HTTP 410")
            )
            await waiting_on_locks(engine, 1, query_like="%webhook_%")
            deleting = asyncio.create_task(delete())
            await waiting_on_locks(engine, 2, query_like="%webhook_%")
        given_up, deleted = await asyncio.wait_for(
            asyncio.gather(give_up, deleting, return_exceptions=True), GUARD_SECONDS
        )

    assert given_up is True  # failed, and counted against the endpoint, before it went
    assert deleted is None  # the DELETE's 204
    async with sessions() as session:
        assert await WebhookEndpointRepository(session).get(endpoint.id) is None
