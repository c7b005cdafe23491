"""The subscribers a worker runs: every handler of every event, built with its deps.

Add a subscriber here (a name, the event types it takes, a handler; see
``services.events.subscribers`` for the contract). A subscriber taken out of this list
has its pending deliveries dropped by the relay, logged, never retried, once no running
worker has known it for EVENT_SUBSCRIBER_GRACE_SECONDS (``services.events.subscriptions``:
workers of the older code, during a rolling deploy, leave a new one's deliveries alone).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from core.db import SessionFactory
from core.settings import Settings
from integrations.crm.client import CrmClient
from integrations.marketing.client import MarketingClient
from services.catalog.indexing import SearchIndexing
from services.email import EmailService
from services.events.handlers import (
    alert_and_email_subscribers,
    customer_value_subscribers,
    shipping_subscribers,
)
from services.events.handlers.crm import crm_subscriber
from services.events.handlers.erasure import account_erasure_subscriber
from services.events.handlers.fulfillment import fulfillment_hold_alert, fulfillment_starter
from services.events.handlers.notifications import notifications_subscriber
from services.events.handlers.search import search_index_subscriber
from services.events.handlers.webhooks import webhook_disabled_alert, webhooks_subscriber
from services.events.probe import relay_probe
from services.events.subscribers import Subscriber
from temporal.clients.fulfillment import FulfillmentWorkflows
from temporal.clients.webhooks import WebhookWorkflows


@dataclass(frozen=True)
class HandlerDeps:
    """What handlers are built with. One set per worker process."""

    settings: Settings
    sessions: SessionFactory
    redis: Redis
    email: EmailService
    # None: the CRM is off (production without HUBSPOT_ACCESS_TOKEN), no CRM subscriber.
    crm: CrmClient | None
    marketing: MarketingClient
    # Starts FulfillmentWorkflow for fulfillment.order_ready.
    fulfillments: FulfillmentWorkflows
    # Starts WebhookDeliveryWorkflow for each (event, endpoint) delivery.
    webhooks: WebhookWorkflows
    # Writes the catalogue's search index (None: SEARCH_INDEX=false).
    search_index: SearchIndexing | None = None


def build_subscribers(deps: HandlerDeps) -> tuple[Subscriber, ...]:
    crm = () if deps.crm is None else (crm_subscriber(deps.crm),)
    subscribers = (
        *crm,
        *customer_value_subscribers(deps.marketing, deps.sessions),
        *alert_and_email_subscribers(deps.email, deps.redis, deps.settings),
        fulfillment_starter(deps.fulfillments, deps.settings),
        fulfillment_hold_alert(deps.email, deps.settings),
        *shipping_subscribers(deps.email, deps.settings),
        search_index_subscriber(deps.search_index),
        notifications_subscriber(),
        account_erasure_subscriber(),
        webhooks_subscriber(deps.webhooks),
        webhook_disabled_alert(deps.email, deps.settings),
        relay_probe(deps.redis),
    )
    names = [s.name for s in subscribers]
    if len(set(names)) != len(names):
        raise ValueError(f"subscriber names must be unique: {sorted(names)}")
    return subscribers
