"""Connecting to Temporal with our data converter (pydantic models on the wire)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from core.errors import DependencyUnavailable
from core.settings import Settings


def require_temporal_address(settings: Settings) -> str:
    if not settings.temporal_address:
        raise DependencyUnavailable(
            "no Temporal server configured: start the stack with `shop dev` "
            "(or pass its --data-dir), or set TEMPORAL_ADDRESS",
            code="temporal_not_configured",
        )
    return settings.temporal_address


async def connect(settings: Settings, *, timeout: float = 10.0) -> Client:  # noqa: ASYNC109
    """A client for ``TEMPORAL_ADDRESS``/``TEMPORAL_NAMESPACE`` (API key and TLS for Cloud)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    tls: bool | TLSConfig = settings.temporal_tls or api_key is not None
    try:
        return await asyncio.wait_for(
            Client.connect(
                require_temporal_address(settings),
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
                api_key=api_key,
                tls=tls,
            ),
            timeout,
        )
    except (RuntimeError, TimeoutError) as exc:
        raise DependencyUnavailable(
            f"Temporal at {settings.temporal_address} is not reachable: {exc}",
            code="temporal_unavailable",
        ) from exc
