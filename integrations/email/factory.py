"""The email sender this deployment uses: real SendGrid with a key, else the sandbox."""

from __future__ import annotations

from core.settings import Settings
from core.telemetry import Tracing
from integrations.email.sender import SANDBOX_API_KEY, SendGridSender


def build_sender(settings: Settings, tracing: Tracing | None = None) -> SendGridSender:
    key = settings.sendgrid_api_key.get_secret_value() if settings.sendgrid_api_key else None
    return SendGridSender(
        key or SANDBOX_API_KEY, settings.resolved_sendgrid_base_url, tracing=tracing
    )
