"""Client spans of the HTTP calls a provider's SDK makes on a transport of its own
(SendGrid's urllib, HubSpot's urllib3, EasyPost's requests), which no instrumentation
of ours sees: the hooks in ``integrations/sdk_tracing.py`` wrap each call in
``ProviderSpans.call``.

Each call is a span named after its method (``POST``), a child of the span current
where the SDK call runs (an activity's, a delivery's; ``asyncio.to_thread`` carries it
into the thread), with the HTTP semantic conventions' attributes in the form the
httpx instrumentation writes them (``OTEL_SEMCONV_STABILITY_OPT_IN`` switches both),
the URL without credentials, ``peer.service`` naming the provider and
``server.address``/``server.port`` its host; an error status for a 4xx or 5xx answer
and for an exception. Its context goes out in the request's ``traceparent`` header, so
a sandbox on our own API continues the trace.

Imported only when spans are exported (``core.instrumentation.provider_spans``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _report_new,
    _set_http_method,
    _set_http_status_code,
    _set_http_url,
    _StabilityMode,
)
from opentelemetry.instrumentation.utils import http_status_to_status_code
from opentelemetry.propagate import inject
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.util.http import redact_url, sanitize_method
from opentelemetry.util.types import AttributeValue

SCOPE = "shopweave.provider_http"
PEER_SERVICE = "peer.service"


@dataclass
class ProviderCall:
    """One HTTP call being made: its span, and the headers to send with the request
    (``traceparent``; none outside a trace)."""

    span: Span
    headers: dict[str, str]
    mode: _StabilityMode
    failed_with: int | None = None  # a 4xx or 5xx answer

    def answered(self, status: int) -> None:
        """The provider's answer: its status code, and an error status for 4xx/5xx."""
        attributes: dict[str, AttributeValue] = {}
        _set_http_status_code(attributes, status, self.mode)
        self.span.set_attributes(attributes)
        code = http_status_to_status_code(status)
        if code is StatusCode.ERROR:
            self.failed_with = status
            self.span.set_status(code)
            if _report_new(self.mode):
                self.span.set_attribute(ERROR_TYPE, str(status))


class ProviderSpans:
    """The client spans of one provider's calls (``service``: ``sendgrid``, ...), with
    a role's tracer provider; as ``core.instrumentation`` hands it out, only inside a
    span (a call outside any makes none, and sends no ``traceparent``)."""

    def __init__(self, provider: trace.TracerProvider, service: str) -> None:
        # Reads OTEL_SEMCONV_STABILITY_OPT_IN once per process, as every instrumentation
        # does before its first span (the library leaves it unannotated).
        stability = _OpenTelemetrySemanticConventionStability
        stability._initialize()  # type: ignore[no-untyped-call]
        self.service = service
        self._mode = stability._get_opentelemetry_stability_opt_in_mode(
            _OpenTelemetryStabilitySignalType.HTTP
        )
        self._tracer = provider.get_tracer(SCOPE)

    @contextmanager
    def call(self, method: str, url: str) -> Iterator[ProviderCall]:
        """A span current while the block sends the request ``headers`` are added to."""
        attributes: dict[str, AttributeValue] = {PEER_SERVICE: self.service}
        name = sanitize_method(method.strip())
        _set_http_method(attributes, method, name, self._mode)
        _set_http_url(attributes, redact_url(url), self._mode)
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        if host:
            attributes[SERVER_ADDRESS] = host
        if port:
            attributes[SERVER_PORT] = port
        with self._tracer.start_as_current_span(
            "HTTP" if name == "_OTHER" else name, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            headers: dict[str, str] = {}
            if span.get_span_context().is_valid:
                inject(headers)
            call = ProviderCall(span, headers, self._mode)
            try:
                yield call
            except Exception as exc:
                # The span records it and takes an error status on its way out; an SDK
                # that raises for a 4xx or 5xx keeps that status as the error's type.
                if _report_new(self._mode) and call.failed_with is None:
                    span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
                raise
