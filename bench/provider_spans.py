"""The CPU cost of a provider SDK call's client span, beside the httpx instrumentation's.

``python -m bench.provider_spans`` times, inside an activity-like span and with spans
batched to an in-memory exporter (as an exporting process batches them), a request
through an httpx client on a mock transport (no socket), the same through a client the
httpx instrumentation traces, and ``ProviderSpans.call`` alone: the span a SendGrid,
HubSpot or EasyPost call gets (``core/client_spans.py``), its ``traceparent`` and its
answer's status. Best of 7 rounds of 300 calls each (the batch queue holds 2,048 spans;
it is flushed between rounds); a shared machine blurs the figures, so compare them
within one run (README *Tracing*). Without an exporter no hook is attached: a call costs
nothing more.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.client_spans import ProviderSpans
from core.instrumentation import InTraceOnlyProvider

ROUNDS = 7
CALLS = 300
URL = "http://127.0.0.1:8000/_sandbox/sendgrid/v3/mail/send"


def main() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    spans = ProviderSpans(InTraceOnlyProvider(provider), "sendgrid")

    def answered(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202)

    plain = httpx.Client(transport=httpx.MockTransport(answered))
    traced = httpx.Client(transport=httpx.MockTransport(answered))
    HTTPXClientInstrumentor.instrument_client(traced, tracer_provider=InTraceOnlyProvider(provider))

    def provider_call() -> None:
        with spans.call("POST", URL) as call:
            call.answered(202)

    def best(fn: Callable[[], object]) -> float:
        rounds = []
        for _ in range(ROUNDS):
            rounds.append(timeit.timeit(fn, number=CALLS) / CALLS)
            provider.force_flush()
            exporter.clear()
        return min(rounds) * 1e6

    with provider.get_tracer("bench").start_as_current_span("RunActivity:bench"):
        bare = best(lambda: plain.post(URL))
        instrumented = best(lambda: traced.post(URL))
        ours = best(provider_call)
    print(f"httpx request, mock transport:     {bare:6.1f} µs")
    print(f"  with the httpx instrumentation:  {instrumented:6.1f} µs (+{instrumented - bare:.1f})")
    print(f"a provider call's span (ours):     {ours:6.1f} µs")
    provider.shutdown()


if __name__ == "__main__":
    main()
