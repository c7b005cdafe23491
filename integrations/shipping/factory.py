"""The carrier this deployment uses: real EasyPost with a key, else the EasyPost sandbox."""

from __future__ import annotations

from core.settings import Settings
from core.telemetry import Tracing
from integrations.shipping.easypost import EasyPostProvider
from integrations.shipping.provider import PostalAddress, ShippingProvider


def build_shipping_provider(settings: Settings, tracing: Tracing | None = None) -> ShippingProvider:
    return EasyPostProvider.from_settings(settings, tracing)


def ship_from_address(settings: Settings) -> PostalAddress:
    """The warehouse parcels leave from (and returns go back to): the SHIP_FROM_* settings."""
    return PostalAddress(
        name=settings.ship_from_name,
        street1=settings.ship_from_street,
        city=settings.ship_from_city,
        state=settings.ship_from_state,
        zip=settings.ship_from_zip,
        country=settings.ship_from_country,
    )
