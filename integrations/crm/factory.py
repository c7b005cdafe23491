"""The CRM this deployment uses: real HubSpot with a token, else the HubSpot sandbox."""

from __future__ import annotations

from core.settings import Settings
from integrations.crm.hubspot import HubSpotCrm


def build_crm(settings: Settings) -> HubSpotCrm:
    return HubSpotCrm.from_settings(settings)
