"""Every request is a span: the client's W3C trace continued (or a new one started), its
trace id in problem+json bodies and log lines, exported only when an exporter is set."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from core.logging import JsonFormatter, _RequestIdFilter
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from tests.otlp_receiver import OtlpReceiver, otlp_receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, object]] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(_RequestIdFilter())  # as configure_logging installs it

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, object]]]:
    """The JSON lines the access log and the error handlers write meanwhile."""
    handler = _Lines()
    loggers = [logging.getLogger(name) for name in ("shop.access", "api.errors")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _line_for(lines: list[dict[str, object]], path: str) -> dict[str, object]:
    return next(line for line in lines if str(line["msg"]) == "%s %s %s" and path in str(line))


async def test_a_problem_and_the_log_line_carry_the_clients_trace_id(
    client: httpx.AsyncClient, log_lines: list[dict[str, object]]
) -> None:
    response = await client.get("/api/no-such-thing", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 404
    problem = response.json()
    assert problem["traceId"] == TRACE
    assert problem["requestId"].startswith("req_")
    line = next(line for line in log_lines if line.get("request_id") == problem["requestId"])
    assert line["trace_id"] == TRACE


async def test_a_request_without_a_traceparent_starts_its_own_trace(
    client: httpx.AsyncClient, log_lines: list[dict[str, object]]
) -> None:
    first = (await client.get("/api/no-such-thing")).json()
    # A malformed traceparent is ignored, as the W3C spec says: a new trace starts.
    second = (
        await client.get("/api/no-such-thing", headers={"traceparent": f"00-{TRACE}-zz-01"})
    ).json()
    for problem in (first, second):
        assert HEX32.match(problem["traceId"]), problem
        assert problem["traceId"] not in {TRACE, "0" * 32}
        line = next(line for line in log_lines if line.get("request_id") == problem["requestId"])
        assert line["trace_id"] == problem["traceId"]
    assert first["traceId"] != second["traceId"]


async def test_an_unhandled_error_answers_and_logs_with_the_trace_id(
    app: FastAPI, client: httpx.AsyncClient, log_lines: list[dict[str, object]]
) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/test-broken", broken)
    response = await client.get("/api/test-broken", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 500
    assert response.json()["traceId"] == TRACE
    logged = next(line for line in log_lines if line["msg"] == "unhandled error")
    assert logged["trace_id"] == TRACE


def test_the_openapi_problem_schema_documents_the_trace_id(app: FastAPI) -> None:
    schema = app.openapi()["components"]["schemas"]["Problem"]["properties"]
    assert "traceId" in schema
    assert "requestId" in schema


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def _traced(settings: Settings, **overrides: object) -> Settings:
    # As make_client builds its app's settings, so that tracing_for finds the same one.
    return Settings.model_validate(settings.model_dump() | overrides)


async def test_with_no_exporter_nothing_is_exported_and_ids_still_appear(
    settings: Settings,
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    receiver: OtlpReceiver,
) -> None:
    # An endpoint is set, but the exporter is `none`: it wins.
    overrides = {"otel_traces_exporter": "none", "otel_exporter_otlp_endpoint": receiver.endpoint}
    http = await make_client(**overrides)
    response = await http.get("/api/no-such-thing", headers={"traceparent": TRACEPARENT})
    assert response.json()["traceId"] == TRACE
    assert (await http.get("/health")).status_code == 200
    tracing = tracing_for(_traced(settings, **overrides), ProcessRole.API)
    assert tracing is not None
    assert tracing.flush()
    await asyncio.sleep(0.2)
    assert receiver.requests == 0
    assert receiver.received() == []


async def test_with_an_otlp_endpoint_the_request_span_is_exported_in_the_clients_trace(
    settings: Settings,
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    receiver: OtlpReceiver,
) -> None:
    overrides = {
        "otel_exporter_otlp_endpoint": receiver.endpoint,
        "otel_resource_attributes": "deployment.environment=test",
    }
    http = await make_client(**overrides)
    assert (await http.get("/health", headers={"traceparent": TRACEPARENT})).status_code == 200
    missing = await http.get("/api/no-such-thing", headers={"traceparent": TRACEPARENT})
    assert missing.json()["traceId"] == TRACE
    own = (await http.get("/api/no-such-thing")).json()["traceId"]
    tracing = tracing_for(_traced(settings, **overrides), ProcessRole.API)
    assert tracing is not None
    assert tracing.exporting
    assert tracing.flush()
    spans = receiver.received()
    health = next(s for s in spans if s.name == "GET /health")
    assert (health.trace_id, health.parent_span_id) == (TRACE, PARENT)
    assert health.service == "shopweave-api"
    assert health.resource["deployment.environment"] == "test"
    assert health.attributes["http.route"] == "/health"
    assert health.attributes["http.response.status_code"] == "200"
    unmatched = [s for s in spans if s.name == "GET" and s.trace_id == TRACE]
    assert len(unmatched) == 1
    assert unmatched[0].attributes["http.response.status_code"] == "404"
    # A request with no traceparent is the root of a trace of its own.
    root = next(s for s in spans if s.trace_id == own)
    assert root.parent_span_id == ""


async def test_with_an_exporter_sql_and_redis_calls_are_spans_under_the_request(
    settings: Settings,
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    receiver: OtlpReceiver,
) -> None:
    overrides = {"otel_exporter_otlp_endpoint": receiver.endpoint}
    http = await make_client(**overrides)
    # Reads the database (``SELECT 1``) and Redis (``PING``); Temporal is not traced here.
    assert (await http.get("/ready", headers={"traceparent": TRACEPARENT})).status_code == 200
    tracing = tracing_for(_traced(settings, **overrides), ProcessRole.API)
    assert tracing is not None
    assert tracing.flush()
    spans = receiver.received()
    request = next(s for s in spans if s.name == "GET /ready")
    assert (request.trace_id, request.parent_span_id) == (TRACE, PARENT)
    children = [s for s in spans if s.parent_span_id == request.span_id]
    sql = next(s for s in children if s.attributes.get("db.system") == "postgresql")
    assert (sql.name, sql.attributes["db.statement"]) == ("SELECT", "SELECT 1")
    assert sql.service == "shopweave-api"
    assert sql.trace_id == TRACE
    ping = next(s for s in children if s.attributes.get("db.system") == "redis")
    assert ping.name == "PING"
    # The app's background work (its listeners, caches) makes no trace of its own.
    assert all(s.parent_span_id for s in spans if "db.system" in s.attributes), [
        (s.name, s.attributes) for s in spans if not s.parent_span_id
    ]


async def test_a_stream_ticket_is_neither_logged_nor_exported(
    settings: Settings,
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    receiver: OtlpReceiver,
    log_lines: list[dict[str, object]],
) -> None:
    """A ticket travels in the URL (a browser's EventSource sends no header): the access
    log writes the path only, and the span's ``url.query`` had it as it came."""
    overrides = {"otel_exporter_otlp_endpoint": receiver.endpoint}
    http = await make_client(**overrides)
    ticket = "stk_" + "Q" * 43
    response = await http.get(
        "/api/events/stream",
        params={"ticket": ticket},
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 401, response.text
    assert ticket not in response.text
    tracing = tracing_for(_traced(settings, **overrides), ProcessRole.API)
    assert tracing is not None
    assert tracing.flush()
    spans = receiver.received()
    span = next(s for s in spans if s.name == "GET /api/events/stream")
    assert span.attributes["url.query"] == "ticket=REDACTED"
    assert ticket not in json.dumps([s.attributes for s in spans])
    logged = json.dumps(log_lines)
    assert "GET /api/events/stream 401" in logged, log_lines
    assert ticket not in logged
