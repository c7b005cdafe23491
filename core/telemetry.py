"""Tracing with OpenTelemetry, configured by its standard ``OTEL_*`` variables.

A process role (the API, a worker, the CLI) gets one ``Tracing``: a tracer provider of
its own (never the global one, so that an API and a worker in one process, as in the
tests, keep their own service names), and what the API's middleware and the Temporal
client's ``TracingInterceptor`` (``temporal/client.py``) create spans with.

With no exporter configured (the default) every span is a non-recording one: it carries
a trace id and a span id, which the log lines, problem+json bodies and Temporal headers
carry on, and nothing is recorded or sent. With ``OTEL_TRACES_EXPORTER=otlp`` spans that
the sampler keeps are batched (``BatchSpanProcessor``: a request only appends to a
queue, a background thread exports) and sent over OTLP/HTTP.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.settings import Settings

log = logging.getLogger(__name__)

TRACER_NAME = "shopweave"
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
_PROPAGATOR = TraceContextTextMapPropagator()


class ProcessRole(StrEnum):
    """Who is tracing; its value is the default ``service.name``."""

    API = "shopweave-api"
    WORKER = "shopweave-worker"
    CLI = "shopweave-cli"


@dataclass(frozen=True)
class TracingConfig:
    """What ``Settings`` say about tracing for one process role."""

    service_name: str
    enabled: bool
    traces_endpoint: str | None  # None: no exporter
    sampler: str
    sampler_arg: float
    resource_attributes: tuple[tuple[str, str], ...]

    @classmethod
    def from_settings(cls, settings: Settings, role: ProcessRole) -> TracingConfig:
        return cls(
            service_name=settings.otel_service_name or role.value,
            enabled=not settings.otel_sdk_disabled,
            traces_endpoint=traces_endpoint(settings),
            sampler=settings.otel_traces_sampler,
            sampler_arg=settings.otel_traces_sampler_arg,
            resource_attributes=tuple(parse_resource_attributes(settings.otel_resource_attributes)),
        )


def traces_endpoint(settings: Settings) -> str | None:
    """Where spans go, or None when no exporter is configured (the spec's rules:
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else the base endpoint plus
    ``/v1/traces``)."""
    exporter = settings.otel_traces_exporter
    if exporter is None:
        configured = (
            settings.otel_exporter_otlp_traces_endpoint or settings.otel_exporter_otlp_endpoint
        )
        exporter = "otlp" if configured else "none"
    if exporter == "none":
        return None
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    base = settings.otel_exporter_otlp_endpoint or DEFAULT_OTLP_ENDPOINT
    return base.rstrip("/") + TRACES_PATH


def parse_resource_attributes(raw: str | None) -> list[tuple[str, str]]:
    """``OTEL_RESOURCE_ATTRIBUTES``: ``key=value`` pairs split by commas, percent-encoded;
    a malformed pair is skipped (with a warning), as the SDK does."""
    pairs: list[tuple[str, str]] = []
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            log.warning("OTEL_RESOURCE_ATTRIBUTES: ignored %r (not key=value)", item)
            continue
        pairs.append((key.strip(), unquote(value.strip())))
    return pairs


def build_sampler(name: str, arg: float) -> Sampler:
    ratio = TraceIdRatioBased(arg)
    return {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(ratio),
    }[name]


class _GivenIds(RandomIdGenerator):
    """Random ids, but those given to ``Tracing.span_with_ids`` for the span it starts."""

    def __init__(self) -> None:
        self.given: ContextVar[tuple[int, int] | None] = ContextVar("given_ids", default=None)

    def generate_trace_id(self) -> int:
        given = self.given.get()
        return given[0] if given else super().generate_trace_id()

    def generate_span_id(self) -> int:
        given = self.given.get()
        return given[1] if given else super().generate_span_id()


class Tracing:
    """One process role's tracer provider and tracer."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        # Spans are recorded only for an exporter; otherwise every span is dropped at
        # birth (a non-recording span: ids, nothing else), whatever the sampler says.
        self.exporting = config.enabled and config.traces_endpoint is not None
        resource = Resource(
            {
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                **dict(config.resource_attributes),
                "service.name": config.service_name,
            }
        )
        sampler = (
            build_sampler(config.sampler, config.sampler_arg) if self.exporting else ALWAYS_OFF
        )
        self._ids = _GivenIds()
        self.provider = TracerProvider(
            sampler=sampler,
            resource=resource,
            shutdown_on_exit=self.exporting,
            id_generator=self._ids,
        )
        if self.exporting:
            # Imported only when used: the exporter pulls in protobuf and requests.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=config.traces_endpoint))
            )
        self.tracer = self.provider.get_tracer(TRACER_NAME)

    def root_context(self, trace_id: int, span_id: int, name: str) -> SpanContext:
        """The context of the root span ``span_with_ids`` makes with these ids (sampled as
        the sampler decides for a root of that trace), without making it: what its
        children are made under, however many times, in whichever process."""
        decision = self.provider.sampler.should_sample(None, trace_id, name).decision
        sampled = decision is Decision.RECORD_AND_SAMPLE
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)

    def span_with_ids(
        self,
        trace_id: int,
        span_id: int,
        name: str,
        *,
        attributes: Mapping[str, str],
        time_ns: int,
    ) -> None:
        """Records a root span of an instant with these ids (``root_context``'s): a trace
        whose ids are known wherever its work runs (a workflow run's, from its run id)."""
        token = self._ids.given.set((trace_id, span_id))
        try:
            span = self.tracer.start_span(
                name, Context(), attributes=attributes, start_time=time_ns
            )
        finally:
            self._ids.given.reset(token)
        span.end(end_time=time_ns)

    def flush(self, timeout_millis: int = 5_000) -> bool:
        """Send what is batched now (a test, a stopping process)."""
        return self.provider.force_flush(timeout_millis) if self.exporting else True


_BY_CONFIG: dict[TracingConfig, Tracing] = {}


def tracing_for(settings: Settings, role: ProcessRole) -> Tracing | None:
    """The process's ``Tracing`` for ``role`` under ``settings`` (one per configuration,
    so one batch and one exporter thread however many clients and apps ask), or None
    when ``OTEL_SDK_DISABLED`` is set."""
    config = TracingConfig.from_settings(settings, role)
    if not config.enabled:
        return None
    tracing = _BY_CONFIG.get(config)
    if tracing is None:
        tracing = _BY_CONFIG[config] = Tracing(config)
        if tracing.exporting:
            log.info(
                "tracing exported",
                extra={"service": config.service_name, "endpoint": config.traces_endpoint},
            )
    return tracing


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the span being handled (a request's, an activity's),
    or None outside any: what an outbox row keeps, so that its deliveries join the trace
    (``continued_span``). Made whether or not spans are exported (a string format)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@contextmanager
def continued_span(
    tracing: Tracing | None,
    name: str,
    traceparent: str | None,
    attributes: Mapping[str, str | int],
) -> Iterator[Span]:
    """A consumer span, current while the block runs: a child of ``traceparent`` (where
    the work was asked for, e.g. the request that wrote an event) when it is valid, and
    linked to the span current here (e.g. the activity doing the work, in a trace of its
    own); without a valid ``traceparent``, a plain child of the current span. With
    ``OTEL_SDK_DISABLED`` (no ``tracing``) nothing is made.

    Without an exporter the span is only ids (``unrecorded_span``: about 2 µs, where the
    SDK's non-recording span cost 14), so the log lines written inside still carry the
    trace id the work was asked for in."""
    if tracing is None:
        yield INVALID_SPAN
        return
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    links: list[Link] = []
    here = trace.get_current_span().get_span_context()
    if parent is None or not trace.get_current_span(parent).get_span_context().is_valid:
        parent = None
    elif here.is_valid:
        links.append(Link(here))
    if not tracing.exporting:
        in_trace = parent or (otel_context.get_current() if here.is_valid else None)
        with trace.use_span(unrecorded_span(in_trace)) as ids:
            yield ids
        return
    with tracing.tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
    ) as span:
        yield span


@contextmanager
def span_for_traces(
    tracer: Tracer | None,
    name: str,
    traceparents: Sequence[str],
    attributes: Mapping[str, str | int],
) -> Iterator[Span]:
    """A producer span, current while the block runs, for work asked for in the traces
    ``traceparents`` name (a batch of events): in that trace when they are all of one,
    else the root of a trace of its own linked to each. Nothing without a tracer, or
    without any valid traceparent (the span current here goes on)."""
    parents = [
        context
        for context in (_PROPAGATOR.extract({"traceparent": tp}) for tp in traceparents)
        if trace.get_current_span(context).get_span_context().is_valid
    ]
    if tracer is None or not parents:
        yield trace.get_current_span()
        return
    contexts = [trace.get_current_span(c).get_span_context() for c in parents]
    links: list[Link] = []
    if len({c.trace_id for c in contexts}) == 1:
        parent = parents[0]
    else:
        parent = Context()  # a root, not a child of whatever is current here
        links = [Link(c) for c in contexts]
    with tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes, links=links
    ) as span:
        yield span


@contextmanager
def in_trace_of(traceparent: str | None) -> Iterator[None]:
    """The span ``traceparent`` names is the current one while the block runs (a start
    made later for a request: the Temporal client's span is its child); a missing or
    malformed one changes nothing."""
    context = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    if context is None or not trace.get_current_span(context).get_span_context().is_valid:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def incoming_context(traceparent: bytes | None, tracestate: bytes | None) -> Context | None:
    """The remote parent a request's W3C ``traceparent`` names, or None (absent or
    malformed: the request starts a trace)."""
    if traceparent is None:
        return None
    carrier = {"traceparent": traceparent.decode("latin-1")}
    if tracestate is not None:
        carrier["tracestate"] = tracestate.decode("latin-1")
    context = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def unrecorded_span(parent: Context | None) -> NonRecordingSpan:
    """A span that is only ids: a child of ``parent`` (its trace id and flags), or the
    root of a new trace. What a request gets when nothing is exported: the cost of two
    random numbers, not of an SDK span."""
    parent_context = trace.get_current_span(parent).get_span_context() if parent else None
    if parent_context is not None:
        trace_id = parent_context.trace_id
        flags = parent_context.trace_flags
    else:
        trace_id = random.getrandbits(128) or 1
        flags = TraceFlags(TraceFlags.DEFAULT)
    return NonRecordingSpan(
        SpanContext(trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=flags)
    )


def format_trace_id(trace_id: int) -> str:
    return format(trace_id, "032x")


def current_trace_id() -> str | None:
    """The trace id of the span being handled (a request's, an activity's), as 32 hex
    digits, or None outside any."""
    trace_id = trace.get_current_span().get_span_context().trace_id
    return format_trace_id(trace_id) if trace_id else None
