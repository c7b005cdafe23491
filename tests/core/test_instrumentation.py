"""Spans of SQL, Redis and httpx calls: attached only with an exporter, and only inside
a span (a background loop's statements start no trace), against the real database,
Redis and an OTLP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from core.db import create_engine
from core.redis import create_redis
from core.settings import Settings
from services.webhooks.sending import webhook_client
from tests.otlp_receiver import OtlpReceiver, otlp_receiver, worker_tracing


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def _traced_listeners(engine_events: object) -> list[object]:
    return [
        listener
        for listener in engine_events  # type: ignore[attr-defined]
        if "opentelemetry" in getattr(listener, "__module__", "")
    ]


async def test_without_an_exporter_nothing_is_instrumented(settings: Settings) -> None:
    tracing = worker_tracing(None)
    assert not tracing.exporting
    engine = create_engine(settings, tracing=tracing)
    redis = create_redis(settings, tracing=tracing)
    http = webhook_client(settings, tracing)
    try:
        assert _traced_listeners(engine.sync_engine.dispatch.before_cursor_execute) == []
        assert not getattr(redis, "_is_instrumented_by_opentelemetry", False)
        assert not getattr(http, "_is_instrumented_by_opentelemetry", False)
    finally:
        await http.aclose()
        await redis.aclose()
        await engine.dispose()


async def test_with_an_exporter_calls_inside_a_span_are_its_children(
    settings: Settings, receiver: OtlpReceiver
) -> None:
    tracing = worker_tracing(receiver.endpoint + "/v1/traces")
    engine = create_engine(settings, tracing=tracing)
    redis = create_redis(settings, tracing=tracing)
    http = webhook_client(settings, tracing)
    try:
        # Outside any span (a background loop's work): no span, no trace of its own.
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 'outside'"))
        await redis.ping()
        with tracing.tracer.start_as_current_span("RunActivity:test") as activity:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 'inside'"))
            await redis.set("shop:test:instrumentation", "1", ex=10)
            answer = await http.post(f"{receiver.endpoint}/not-traces", content=b"{}")
            assert answer.status_code == 404
        assert tracing.flush()
    finally:
        await http.aclose()
        await redis.aclose()
        await engine.dispose()
    spans = receiver.received()
    parent = format(activity.get_span_context().span_id, "016x")
    statements = [s.attributes.get("db.statement") for s in spans]
    assert "SELECT 'outside'" not in statements
    assert "PING" not in statements
    sql = next(s for s in spans if s.attributes.get("db.statement") == "SELECT 'inside'")
    assert (sql.parent_span_id, sql.service) == (parent, "shopweave-worker")
    assert sql.attributes["db.system"] == "postgresql"
    stored = next(s for s in spans if s.attributes.get("db.system") == "redis")
    assert (stored.name, stored.parent_span_id) == ("SET", parent)
    posted = next(s for s in spans if s.name == "POST")
    assert posted.parent_span_id == parent
    assert posted.attributes["http.status_code"] == "404"
