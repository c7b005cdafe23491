"""Request ids, a trace span, one log line and Prometheus metrics per request (pure ASGI,
no buffering)."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.route_templates import UNMATCHED, RouteTemplates
from core.ids import IdPrefix, new_id
from core.logging import request_id_var
from core.telemetry import Tracing, incoming_context, unrecorded_span

log = logging.getLogger("shop.access")

# A client may pass its own id through (for tracing across systems) if it is sane.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Query parameters that are credentials (a live stream's `?ticket=`, for a browser's
# EventSource): a span's `url.query` says REDACTED instead, as OpenTelemetry's HTTP
# conventions ask of credentials in a URL. The access log writes the path only.
SECRET_QUERY_PARAMETERS = frozenset({"ticket"})


# HTTP's methods. A request's method is any token its client sends: any other names its
# span ``HTTP`` (the semantic conventions, as FastAPI names it) and is counted as
# ``_OTHER`` (the conventions' value), so that no client picks its spans' names or adds
# series to the request metrics.
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)


def _span_method(method: str) -> str:
    return method if method in _KNOWN_METHODS else "HTTP"


def _metric_method(method: str) -> str:
    return method if method in _KNOWN_METHODS else "_OTHER"


def current_request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else request_id_var.get()


def fastapi_telemetry(tracing: Tracing | None) -> TelemetryConfig:
    """``FastAPI(telemetry=...)``: its server span per request, on our provider, when
    spans are exported (no spans per dependency or serialisation); off otherwise. Never
    its metrics (ours are Prometheus'), its log records, nor its configuring exporters
    from the environment."""
    if tracing is None or not tracing.exporting:
        return {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}
    return {
        "tracer_provider": tracing.provider,
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "auto_configure": False,
    }


def redacted_query(query_string: bytes) -> str | None:
    """``query_string`` with the values of ``SECRET_QUERY_PARAMETERS`` replaced by
    ``REDACTED``, or None when it holds none of them (kept as it is)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if not any(name in SECRET_QUERY_PARAMETERS for name, _ in pairs):
        return None
    return urlencode(
        [(name, "REDACTED" if name in SECRET_QUERY_PARAMETERS else value) for name, value in pairs]
    )


def request_span(request: Request) -> Span:
    """The request's span (``RequestContextMiddleware``), also after it has ended."""
    span = request.scope.get("state", {}).get("span")
    return span if isinstance(span, Span) else INVALID_SPAN


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


def metrics_exposition(registry: CollectorRegistry, shared_dir: Path | None) -> CollectorRegistry:
    """What ``/metrics`` exposes of the request metrics ``Metrics(registry)`` records.

    One process (``shared_dir`` None): that registry, with the process's CPU, memory and
    GC figures. Several processes behind one port (``shop api --workers N``): each
    records into its own files in ``shared_dir`` (prometheus_client's multiprocess mode,
    chosen when it is imported with ``PROMETHEUS_MULTIPROC_DIR`` set), and every process
    answers the sum over all of them, so a scrape that reaches any process sees every
    request and a counter never jumps back. Per-process figures (CPU, memory) cannot be
    summed and are left out then.
    """
    if shared_dir is None:
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        return registry
    exposition = CollectorRegistry()
    StartedFilesCollector(exposition, path=str(shared_dir))  # type: ignore[no-untyped-call]
    return exposition


# The header of a process's file: how many of its bytes are in use (prometheus_client's
# ``mmap_dict``: 4 bytes, padded to 8).
_FILE_HEADER = 8


class StartedFilesCollector(MultiProcessCollector):
    """``MultiProcessCollector`` without the files a starting process has not sized yet.

    A process creates its file on its first sample and only then sizes it
    (``MmapedDict.__init__``: open, then truncate), so a scrape by another process in
    between read a file of 0 bytes, and prometheus_client's merge raised ``struct.error``
    for the whole scrape: ``/metrics`` answered 500 while a second API process started
    (prometheus/client_python#1199). Such a file holds no sample yet; leaving it out loses
    nothing.
    """

    def collect(self) -> Iterable[Metric]:
        files = []
        for entry in os.scandir(self._path):
            if not entry.name.endswith(".db"):
                continue
            try:
                if entry.stat().st_size >= _FILE_HEADER:
                    files.append(entry.path)
            except FileNotFoundError:  # gone since the listing
                continue
        return self.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]


class RequestContextMiddleware:
    """Every request gets a request id (the client's ``X-Request-ID`` if sane) and a
    span: a child of the client's W3C ``traceparent`` if it sent one, else the root of a
    new trace. The span is current while the request is handled, so that log lines,
    problem+json bodies and the Temporal calls it makes carry its trace id.

    With spans exported (``tracing.exporting``) the span is FastAPI's own server span
    (``fastapi_telemetry``), already current here: named after the route, with the
    HTTP semantic conventions' attributes. Otherwise this makes one that is only ids,
    at the cost of two random numbers."""

    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.spans_made_by_fastapi = tracing is not None and tracing.exporting
        self.routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = traceparent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        request_id = (
            incoming if incoming and _CLIENT_ID.match(incoming) else new_id(IdPrefix.REQUEST)
        )
        trace_token = None
        span: Span
        if self.spans_made_by_fastapi:
            span = trace.get_current_span()
            # FastAPI's span recorded the query as it came (redacting only cloud storage's
            # signatures): a stream ticket would be exported with it.
            query = scope.get("query_string") or b""
            if b"ticket" in query and (redacted := redacted_query(query)) is not None:
                span.set_attribute("url.query", redacted)
        else:
            parent = incoming_context(traceparent, tracestate) if traceparent else None
            span = unrecorded_span(parent)
            trace_token = otel_context.attach(trace.set_span_in_context(span, parent))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["span"] = span
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()
        method = scope["method"]
        route: str | None = None  # the template of the route matched
        route_read = False

        def read_route() -> None:
            nonlocal route, route_read
            if route_read:
                return
            route_read = True
            route = self.routes.template(scope)
            if route is not None and self.spans_made_by_fastapi:
                # Named before the answer goes out (FastAPI's span ends with it). FastAPI
                # names it after the route it ran: none for an answer given before routing
                # (an OPTIONS, a preflight, an idempotent replay).
                span.set_attribute("http.route", route)
                span.update_name(f"{_span_method(method)} {route}")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
                read_route()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            read_route()
            label = route or UNMATCHED
            counted_as = _metric_method(method)
            self.metrics.requests.labels(counted_as, label, str(status)).inc()
            self.metrics.latency.labels(counted_as, label).observe(elapsed)
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={"ms": round(elapsed * 1000, 1)},
            )
            if trace_token is not None:
                otel_context.detach(trace_token)
            request_id_var.reset(token)
