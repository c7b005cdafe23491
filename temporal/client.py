"""Connecting to Temporal with our data converter (pydantic models on the wire) and
OpenTelemetry tracing (``temporal/run_traces.py``: the SDK's ``TracingInterceptor`` for
the client's calls and the activities, ours for the workflows).

The interceptor is the client's, so it also runs in every worker built on the client:
a start, signal, update or query carries the caller's trace in a Temporal header, and
the workflow's and its activities' spans join that trace (``core/telemetry.py``).
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client, Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from core.errors import DependencyUnavailable, TemporalUnavailable
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from temporal.failures import data_converter
from temporal.run_traces import RunTracingInterceptor


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
    on the client, its workflows and activities (a run started without a trace, as a
    Schedule's, in a trace of its own: ``temporal/run_traces.py``)."""
    tracing = tracing_for(settings, role)
    return [] if tracing is None else [RunTracingInterceptor(tracing)]


def worker_runtime(settings: Settings) -> Runtime | None:
    """A worker process's SDK runtime serving its metrics on ``WORKER_METRICS_PORT``
    (durations in seconds, as Prometheus names them), or None (the SDK's default runtime,
    no metrics endpoint). One per process: the port is bound until the process ends."""
    if settings.worker_metrics_port is None:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    metrics = PrometheusConfig(bind_address=address, durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


async def connect(
    settings: Settings,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
    role: ProcessRole = ProcessRole.CLI,
    runtime: Runtime | None = None,
) -> Client:
    """A client for ``TEMPORAL_ADDRESS``/``TEMPORAL_NAMESPACE`` (API key and TLS for
    Cloud), tracing as ``role`` (the API's, a worker's, the CLI's); ``runtime``: a
    worker's, with its metrics endpoint (``worker_runtime``)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    tls: bool | TLSConfig = settings.temporal_tls or api_key is not None
    try:
        return await asyncio.wait_for(
            Client.connect(
                require_temporal_address(settings),
                namespace=settings.temporal_namespace,
                data_converter=data_converter,
                api_key=api_key,
                tls=tls,
                interceptors=client_interceptors(settings, role),
                runtime=runtime,
            ),
            timeout,
        )
    except (RuntimeError, TimeoutError) as exc:
        raise not_reachable(settings.temporal_address, exc, timeout) from exc


def not_reachable(address: str | None, exc: Exception, seconds: float) -> TemporalUnavailable:
    """No connection to Temporal opened within ``seconds`` (``exc`` says why): 503
    ``temporal_unavailable``, naming the address (``address``: None when not known)."""
    where = f"Temporal at {address}" if address else "Temporal"
    reason = str(exc) or f"no connection within {seconds:g} s"
    return TemporalUnavailable(f"{where} is not reachable: {reason}", code="temporal_unavailable")
