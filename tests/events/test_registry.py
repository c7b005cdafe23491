"""The subscribers a worker runs, as ``shop worker`` builds them."""

from __future__ import annotations

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


def test_the_worker_runs_every_handler_once_under_its_own_name(
    settings: Settings, engine: AsyncEngine, redis: Redis
) -> None:
    sessions = create_session_factory(engine)
    deps = HandlerDeps(
        settings=settings,
        sessions=sessions,
        redis=redis,
        email=EmailService(sessions, build_sender(settings), EmailTemplates(), "x@example.com"),
        crm=build_crm(settings),
        marketing=build_marketing_client(settings),
    )
    subscribers = build_subscribers(deps)
    names = [s.name for s in subscribers]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "crm",
        "lifetime_value",
        "marketing",
        "low_stock_alert",
        "auto_reorder",
        "payment_failed_email",
        "payment_failure_metrics",
        "refund_email",
        "relay_probe",
    }
    [probe] = [s for s in subscribers if s.wants(EventType.RELAY_PROBE)]
    assert probe.name == "relay_probe"
