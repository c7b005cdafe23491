"""The marketing client this deployment uses: SendGrid with a key, else the sandbox."""

from __future__ import annotations

from core.settings import Settings
from core.telemetry import Tracing
from integrations.email.sender import SANDBOX_API_KEY
from integrations.marketing.sendgrid import SendGridMarketing


def build_marketing_client(settings: Settings, tracing: Tracing | None = None) -> SendGridMarketing:
    key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None
    return SendGridMarketing(
        key or SANDBOX_API_KEY,
        settings.resolved_sendgrid_base_url,
        list_name=settings.sendgrid_customers_list,
        tracing=tracing,
    )
