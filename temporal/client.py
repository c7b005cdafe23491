"""Connecting to Temporal with our data converter (pydantic models on the wire) and
OpenTelemetry's ``TracingInterceptor``.

The interceptor is the client's, so it also runs in every worker built on the client:
a start, signal, update or query carries the caller's trace in a Temporal header, and
the workflow's and its activities' spans join that trace (``core/telemetry.py``).
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from core.errors import DependencyUnavailable
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for


def require_temporal_address(settings: Settings) -> str:
    if not settings.temporal_address:
        raise DependencyUnavailable(
            "no Temporal server configured: start the stack with `shop dev` "
            "(or pass its --data-dir), or set TEMPORAL_ADDRESS",
            code="temporal_not_configured",
        )
    return settings.temporal_address


def client_interceptors(settings: Settings, role: ProcessRole) -> list[Interceptor]:
    """Tracing, unless ``OTEL_SDK_DISABLED``: the client's calls and, in a worker built
    on the client, its workflows and activities."""
    tracing = tracing_for(settings, role)
    return [] if tracing is None else [TracingInterceptor(tracing.tracer)]


async def connect(
    settings: Settings,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
    role: ProcessRole = ProcessRole.CLI,
) -> Client:
    """A client for ``TEMPORAL_ADDRESS``/``TEMPORAL_NAMESPACE`` (API key and TLS for
    Cloud), tracing as ``role`` (the API's, a worker's, the CLI's)."""
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
                interceptors=client_interceptors(settings, role),
            ),
            timeout,
        )
    except (RuntimeError, TimeoutError) as exc:
        raise DependencyUnavailable(
            f"Temporal at {settings.temporal_address} is not reachable: {exc}",
            code="temporal_unavailable",
        ) from exc
