"""The subscribers a worker runs, as ``shop worker`` builds them, and the event catalogue:
every event type has a subscriber, so a new type published with none fails here."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

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
from tests.stack import production_settings
from workers.registry import WorkerDeps, default_subscribers

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


async def test_a_production_worker_runs_the_crm_only_with_hubspots_token(
    settings: Settings, engine: AsyncEngine, redis: Redis, temporal_client: Client
) -> None:
    """HubSpot is optional in production (its sandbox is not mounted there): without
    HUBSPOT_ACCESS_TOKEN the CRM subscriber is off, rather than posting every order's deal
    to a path that answers 404 and retrying it forever."""
    async with httpx.AsyncClient() as webhook_http:

        def names(worker_settings: Settings) -> set[str]:
            deps = WorkerDeps(
                settings=worker_settings,
                client=temporal_client,
                engine=engine,
                sessions=create_session_factory(engine),
                redis=redis,
                email_sender=build_sender(worker_settings),
                webhook_http=webhook_http,
            )
            return {s.name for s in default_subscribers(deps)}

        without = names(production_settings(settings))
        assert "crm" not in without
        assert {"marketing", "lifetime_value", "webhooks"} <= without
        assert "crm" in names(production_settings(settings, hubspot_access_token="pat-na1-x"))
        assert "crm" in names(settings)  # outside production, the sandbox stands in
