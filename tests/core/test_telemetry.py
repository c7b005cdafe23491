from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, SpanKind

from core.logging import ConsoleFormatter, JsonFormatter, _RequestIdFilter
from core.settings import Settings
from core.telemetry import (
    ProcessRole,
    Tracing,
    TracingConfig,
    continued_span,
    current_traceparent,
    incoming_context,
    parse_resource_attributes,
    span_for_traces,
    traces_endpoint,
    tracing_for,
    unrecorded_span,
)
from tests.otlp_receiver import otlp_receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01".encode()


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.delenv(name, raising=False)


def test_no_endpoint_and_no_exporter_means_nothing_is_exported() -> None:
    assert traces_endpoint(Settings()) is None


def test_the_endpoint_variables_follow_the_otlp_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert traces_endpoint(Settings()) == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4318/custom")
    assert traces_endpoint(Settings()) == "http://jaeger:4318/custom"  # as given
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert traces_endpoint(Settings()) is None


def test_the_otlp_exporter_alone_sends_to_the_local_default() -> None:
    settings = Settings(otel_traces_exporter="otlp")
    assert traces_endpoint(settings) == "http://localhost:4318/v1/traces"


def test_an_unknown_exporter_or_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="otel_traces_exporter"):
        Settings()


def test_resource_attributes_are_decoded_and_a_bad_pair_is_skipped() -> None:
    assert parse_resource_attributes("deployment.environment=prod,team=a%20b,broken, =x") == [
        ("deployment.environment", "prod"),
        ("team", "a b"),
    ]


def test_each_role_has_its_service_name_unless_one_is_set() -> None:
    assert TracingConfig.from_settings(Settings(), ProcessRole.API).service_name == (
        "shopweave-api"
    )
    assert TracingConfig.from_settings(Settings(), ProcessRole.WORKER).service_name == (
        "shopweave-worker"
    )
    named = Settings(otel_service_name="shop-eu")
    assert TracingConfig.from_settings(named, ProcessRole.WORKER).service_name == "shop-eu"


def test_one_tracing_per_configuration_and_none_when_disabled() -> None:
    assert tracing_for(Settings(), ProcessRole.API) is tracing_for(Settings(), ProcessRole.API)
    assert tracing_for(Settings(), ProcessRole.API) is not tracing_for(
        Settings(), ProcessRole.WORKER
    )
    assert tracing_for(Settings(otel_sdk_disabled=True), ProcessRole.API) is None


def test_a_traceparent_is_continued_and_a_bad_one_ignored() -> None:
    parent = incoming_context(TRACEPARENT, b"vendor=1")
    span = unrecorded_span(parent)
    context = span.get_span_context()
    assert format(context.trace_id, "032x") == TRACE
    assert context.span_id != 0x00F067AA0BA902B7
    assert context.trace_flags.sampled  # the client's decision travels on
    assert not span.is_recording()
    assert incoming_context(b"00-xyz-00f067aa0ba902b7-01", None) is None
    fresh = unrecorded_span(None).get_span_context()
    assert fresh.is_valid
    assert format(fresh.trace_id, "032x") != TRACE


def _line(formatter: logging.Formatter) -> str:
    record = logging.makeLogRecord({"name": "shop.test", "levelname": "INFO", "msg": "step"})
    _RequestIdFilter().filter(record)
    return formatter.format(record)


def test_unexported_spans_carry_the_callers_trace_into_log_lines() -> None:
    """What an activity's log lines get with no exporter: the tracing interceptor starts
    the activity's span under the caller's context, and the span is only ids."""
    tracing = tracing_for(Settings(), ProcessRole.WORKER)
    assert tracing is not None
    assert not tracing.exporting
    token = otel_context.attach(incoming_context(TRACEPARENT, None) or otel_context.Context())
    try:
        with tracing.tracer.start_as_current_span("RunActivity:orders.validate") as span:
            assert not span.is_recording()
            assert json.loads(_line(JsonFormatter()))["trace_id"] == TRACE
            assert f"trace_id={TRACE}" in _line(ConsoleFormatter())
    finally:
        otel_context.detach(token)
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert "trace_id" not in json.loads(_line(JsonFormatter()))


def test_the_current_traceparent_names_the_span_being_handled() -> None:
    assert current_traceparent() is None
    token = otel_context.attach(incoming_context(TRACEPARENT, None) or otel_context.Context())
    try:
        span = unrecorded_span(otel_context.get_current())
        with trace.use_span(span):
            span_id = format(span.get_span_context().span_id, "016x")
            assert current_traceparent() == f"00-{TRACE}-{span_id}-01"
    finally:
        otel_context.detach(token)


def _recording_tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider.get_tracer("test"), spans


def _recording_tracing(endpoint: str) -> tuple[Tracing, InMemorySpanExporter]:
    """An exporting ``Tracing`` whose finished spans are also kept here (links, kinds)."""
    tracing = Tracing(
        TracingConfig(
            service_name="test",
            enabled=True,
            traces_endpoint=endpoint,
            sampler="parentbased_always_on",
            sampler_arg=1.0,
            resource_attributes=(),
        )
    )
    spans = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(spans))
    return tracing, spans


def test_a_continued_span_joins_the_stored_trace_and_links_the_current_one() -> None:
    with otlp_receiver() as receiver:
        tracing, spans = _recording_tracing(receiver.endpoint + "/v1/traces")
        stored = TRACEPARENT.decode()
        with tracing.tracer.start_as_current_span("RunActivity:events.deliver") as activity:
            with continued_span(tracing, "deliver order.created", stored, {"n": 1}) as span:
                assert trace.get_current_span() is span
                assert TRACE in (current_traceparent() or "")
            with continued_span(tracing, "deliver user.created to crm", None, {}):
                pass
        assert tracing.flush()
    delivered, unlinked, _ = spans.get_finished_spans()
    assert delivered.context is not None
    assert delivered.parent is not None
    assert format(delivered.context.trace_id, "032x") == TRACE
    assert delivered.parent.span_id == 0x00F067AA0BA902B7
    assert delivered.kind is SpanKind.CONSUMER
    assert delivered.attributes == {"n": 1}
    assert [link.context for link in delivered.links] == [activity.get_span_context()]
    # No stored trace: a plain child of the activity's span, nothing linked.
    assert unlinked.parent is not None
    assert unlinked.parent.span_id == activity.get_span_context().span_id
    assert list(unlinked.links) == []


def test_without_an_exporter_a_continued_span_is_ids_in_the_stored_trace() -> None:
    tracing = tracing_for(Settings(), ProcessRole.WORKER)
    assert tracing is not None
    assert not tracing.exporting
    with continued_span(tracing, "deliver", TRACEPARENT.decode(), {}) as span:
        assert not span.is_recording()
        assert span.get_span_context().trace_id == int(TRACE, 16)
        assert TRACE in (current_traceparent() or "")
    # Outside any trace and with none stored: a trace of its own.
    with continued_span(tracing, "deliver", None, {}) as span:
        assert span.get_span_context().is_valid
        assert span.get_span_context().trace_id != int(TRACE, 16)
    with (
        tracing.tracer.start_as_current_span("RunActivity") as activity,
        continued_span(tracing, "deliver", None, {}) as span,
    ):
        assert span.get_span_context().trace_id == activity.get_span_context().trace_id


def test_a_continued_span_without_a_tracer_is_nothing() -> None:
    with continued_span(None, "deliver", TRACEPARENT.decode(), {}) as span:
        assert span is INVALID_SPAN
        assert trace.get_current_span() is INVALID_SPAN


def test_a_batch_span_joins_one_trace_or_links_to_each() -> None:
    tracer, spans = _recording_tracer()
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    same = [TRACEPARENT.decode(), f"00-{TRACE}-1111111111111111-01"]
    with tracer.start_as_current_span("relay pass"):
        with span_for_traces(tracer, "relay one", same, {}):
            pass
        with span_for_traces(tracer, "relay mixed", [TRACEPARENT.decode(), other], {}):
            pass
        with span_for_traces(tracer, "relay none", ["garbage"], {}) as current:
            assert current is trace.get_current_span()
    one, mixed, _ = spans.get_finished_spans()
    assert one.parent is not None
    assert (format(one.parent.trace_id, "032x"), one.parent.span_id) == (TRACE, 0x00F067AA0BA902B7)
    assert one.kind is SpanKind.PRODUCER
    assert mixed.parent is None  # a root of its own, not the pass's child
    assert [format(link.context.trace_id, "032x") for link in mixed.links] == [
        TRACE,
        "0af7651916cd43dd8448eb211c80319c",
    ]
