"""Spans of the libraries' calls, when spans are exported: SQL statements (SQLAlchemy,
over asyncpg), Redis commands and outgoing HTTP requests (httpx: Stripe's SDK, outgoing
webhooks; the SendGrid, HubSpot and EasyPost SDKs' own transports, through
``provider_spans``), each a child of the span it is made in (a request's, an activity's).

Each is attached to one client object, an engine, a Redis client, an httpx client or an
SDK's client, with the tracer provider of the process role that made it
(``core/telemetry.py``), never by patching a library for the whole process: an API and
a worker in one process (the tests) keep their own service names, and an object made
without an exporter costs nothing at all, not even an import (the instrumentation
packages are imported here, and only when spans are exported).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind
from opentelemetry.util.types import Attributes

from core.telemetry import Tracing

if TYPE_CHECKING:
    import httpx
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.client_spans import ProviderSpans

log = logging.getLogger(__name__)

# The scope the SQL spans are recorded under, as the SQLAlchemy instrumentor names it.
SQL_SCOPE = "opentelemetry.instrumentation.sqlalchemy"


def _exporting(tracing: Tracing | None) -> Tracing | None:
    return tracing if tracing is not None and tracing.exporting else None


def _in_trace(parent: Context | None) -> bool:
    return trace.get_current_span(parent).get_span_context().is_valid


class InTraceOnlyTracer(trace.Tracer):
    """A library call's span only inside a span (a request's, an activity's, a
    delivery's): one made outside any, by a background loop (the outbox relay's passes,
    a notification listener), would start a trace of its own for every statement."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        if not _in_trace(context):
            return INVALID_SPAN
        return self._tracer.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    # The API's own decorator (``_agnosticcontextmanager``) is private; a plain context
    # manager is what the instrumentations use it as.
    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        if not _in_trace(context):
            yield INVALID_SPAN
            return
        with self._tracer.start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        ) as span:
            yield span


class InTraceOnlyProvider(trace.TracerProvider):
    """A role's provider as the libraries' instrumentation gets it: ``InTraceOnlyTracer``s."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._provider = provider

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return InTraceOnlyTracer(
            self._provider.get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        )


def trace_engine(engine: AsyncEngine, tracing: Tracing | None) -> None:
    """A span per statement run on ``engine`` (``db.statement``, ``db.system``, the
    server's address), with the pool's checkouts unmeasured (no meter: ours are
    Prometheus')."""
    if (exporting := _exporting(tracing)) is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    # What ``SQLAlchemyInstrumentor().instrument(engine=...)`` builds, without its
    # patching ``create_engine`` for the whole process (once per process, one provider).
    connections = NoOpMeter(SQL_SCOPE).create_up_down_counter("db.client.connections.usage")
    tracer = InTraceOnlyProvider(exporting.provider).get_tracer(SQL_SCOPE)
    EngineTracer(tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]


def trace_redis(client: Redis, tracing: Tracing | None) -> None:
    """A span per Redis command (and one per pipeline) sent by ``client``."""
    if (exporting := _exporting(tracing)) is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(
        client, tracer_provider=InTraceOnlyProvider(exporting.provider)
    )


def trace_httpx(client: httpx.AsyncClient, tracing: Tracing | None) -> None:
    """A client span per request ``client`` sends, whose context travels in the request's
    ``traceparent`` header (a Stripe sandbox on our own API continues it)."""
    if (exporting := _exporting(tracing)) is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(
        client, tracer_provider=InTraceOnlyProvider(exporting.provider)
    )


def trace_stripe_http(http_client: Any, tracing: Tracing | None) -> None:
    """``stripe.HTTPXClient``'s requests: its async httpx client (``_client_async``, the
    one our async calls use; the SDK offers no transport to pass in)."""
    if _exporting(tracing) is None:
        return
    import httpx

    client = getattr(http_client, "_client_async", None)
    if isinstance(client, httpx.AsyncClient):
        trace_httpx(client, tracing)
    else:
        log.warning("Stripe's HTTP client has no httpx client to trace; its calls get no spans")


def provider_spans(tracing: Tracing | None, service: str) -> ProviderSpans | None:
    """What a provider SDK's transport hook (``integrations/sdk_tracing.py``) makes a
    client span per HTTP call with, ``service`` (``sendgrid``, ``hubspot``,
    ``easypost``) as its ``peer.service``; None without an exporter (then the hook
    attaches nothing)."""
    if (exporting := _exporting(tracing)) is None:
        return None
    from core.client_spans import ProviderSpans

    return ProviderSpans(InTraceOnlyProvider(exporting.provider), service)
