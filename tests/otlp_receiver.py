"""A real OTLP/HTTP trace receiver for tests: what a collector's ``/v1/traces`` does.

It decodes every ``ExportTraceServiceRequest`` (protobuf, gzip or not) the exporter
posts and keeps its spans, so that a test can check what a process really exported.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cli.stack.process import free_port
from core.settings import Settings
from core.telemetry import ProcessRole, Tracing, TracingConfig, tracing_for


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # 32 hex digits
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict[str, str]
    resource: dict[str, str]  # its process's resource attributes (service.name, ...)
    kind: str = "SPAN_KIND_INTERNAL"  # SPAN_KIND_CLIENT, SPAN_KIND_SERVER, ...
    status: str = "STATUS_CODE_UNSET"  # or STATUS_CODE_OK, STATUS_CODE_ERROR
    events: tuple[str, ...] = ()  # their names ("exception", ...)


@dataclass
class OtlpReceiver:
    endpoint: str  # the base, as OTEL_EXPORTER_OTLP_ENDPOINT takes it
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={
                                a.key: str(
                                    getattr(a.value, a.value.WhichOneof("value") or "string_value")
                                )
                                for a in span.attributes
                            },
                            resource=resource,
                            kind=Span.SpanKind.Name(span.kind),
                            status=Status.StatusCode.Name(span.status.code),
                            events=tuple(event.name for event in span.events),
                        )
                    )
        with self.lock:
            self.requests += 1
            self.spans.extend(found)


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    port = free_port()
    receiver = OtlpReceiver(endpoint=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            receiver.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return  # no line per export on the test's output

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def flush_exporters(settings: Settings) -> None:
    """Send what the API's and the worker's tracer providers of ``settings`` hold now."""
    for role in (ProcessRole.API, ProcessRole.WORKER):
        tracing = tracing_for(settings, role)
        assert tracing is not None
        assert tracing.exporting
        assert tracing.flush()


def worker_tracing(endpoint: str | None) -> Tracing:
    """A worker role's tracing, every span sampled, exporting to ``endpoint`` (None: none)."""
    return Tracing(
        TracingConfig(
            service_name=ProcessRole.WORKER.value,
            enabled=True,
            traces_endpoint=endpoint,
            sampler="parentbased_always_on",
            sampler_arg=1.0,
            resource_attributes=(),
        )
    )
