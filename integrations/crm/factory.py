"""The CRM this deployment uses: real HubSpot with a token, else the HubSpot sandbox."""

from __future__ import annotations

from core.settings import Settings
from core.telemetry import Tracing
from integrations.crm.hubspot import HubSpotCrm


def build_crm(settings: Settings, tracing: Tracing | None = None) -> HubSpotCrm:
    return HubSpotCrm.from_settings(settings, tracing)
