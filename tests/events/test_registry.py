"""The subscribers a worker runs, as ``shop worker`` builds them, and the event catalogue:
every event type has a subscriber, so a new type published with none fails here."""

from __future__ import annotations

import re
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from core.events import EventType
from core.settings import Settings
from integrations.crm.factory import build_crm
from integrations.email.factory import build_sender
from integrations.email.templates import EmailTemplates
from integrations.marketing.factory import build_marketing_client
from services.email import EmailService
from services.events.registry import HandlerDeps, build_subscribers
from services.events.subscribers import Subscriber, subscribers_of
from temporal.clients import FulfillmentWorkflows, TemporalConnection
from temporal.clients.webhooks import WebhookWorkflows

# The seed's "Event Handlers" and ARCHITECTURE §6: each must reach a real handler.
SEED_EVENTS = {
    EventType.ORDER_CREATED,
    EventType.ORDER_CANCELLED,
    EventType.INVENTORY_LOW_STOCK,
    EventType.PAYMENT_FAILED,
    EventType.PAYMENT_REFUNDED,
    EventType.FULFILLMENT_ORDER_READY,
    EventType.USER_CREATED,
}
ROOT = Path(__file__).resolve().parents[2]


def _subscribers(settings: Settings, engine: AsyncEngine, redis: Redis) -> tuple[Subscriber, ...]:
    sessions = create_session_factory(engine)
    return build_subscribers(
        HandlerDeps(
            settings=settings,
            sessions=sessions,
            redis=redis,
            email=EmailService(sessions, build_sender(settings), EmailTemplates(), "x@example.com"),
            crm=build_crm(settings),
            marketing=build_marketing_client(settings),
            fulfillments=FulfillmentWorkflows(TemporalConnection.from_settings(settings)),
            webhooks=WebhookWorkflows(TemporalConnection.from_settings(settings), settings),
        )
    )


def test_the_worker_runs_every_handler_once_under_its_own_name(
    settings: Settings, engine: AsyncEngine, redis: Redis
) -> None:
    subscribers = _subscribers(settings, engine, redis)
    names = [s.name for s in subscribers]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "crm",
        "lifetime_value",
        "marketing",
        "low_stock_alert",
        "auto_reorder",
        "stock_not_put_back_alert",
        "payment_failed_email",
        "payment_failure_metrics",
        "refund_email",
        "refund_failed_alert",
        "refund_failed_email",
        "shipment_shipped_email",
        "order_delivered_email",
        "shipment_delayed_alert",
        "relay_probe",
        "webhooks",
        "fulfillment_starter",
        "fulfillment_hold_alert",
        "notifications",
    }
    [probe] = [s for s in subscribers if s.wants(EventType.RELAY_PROBE)]
    assert probe.name == "relay_probe"


def test_every_event_type_has_a_subscriber(
    settings: Settings, engine: AsyncEngine, redis: Redis
) -> None:
    subscribers = _subscribers(settings, engine, redis)
    unsubscribed = [t for t in EventType if not subscribers_of(t, subscribers)]
    assert unsubscribed == [], f"published with no subscriber: {unsubscribed}"
    assert set(EventType) >= SEED_EVENTS


def test_every_catalogued_event_type_is_published_somewhere() -> None:
    """The catalogue lists what the code publishes, no more (a type nobody publishes is
    a subscriber waiting for nothing)."""
    sources = "\n".join(
        path.read_text()
        for folder in ("services", "bench", "api", "activities")
        for path in (ROOT / folder).rglob("*.py")
    )
    published = set(re.findall(r"publish\(\s*[\w.]+,\s*EventType\.(\w+)", sources))
    assert published == {t.name for t in EventType}
