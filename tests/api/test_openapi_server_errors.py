"""The OpenAPI document lists, for every operation, the answers no client causes: 500
``internal_error``, 503 ``database_unavailable`` with ``Retry-After`` and, where the
operation reads Redis (its dependencies say so: the Redis client, the token's revocation
check), 503 ``dependency_unavailable``; each as problem+json with an example that is what
the API sends (Redis': ``tests/api/test_system.py``) (``api/openapi.py``, ``api/problems.py``).

Left out: the sandboxes (``/_sandbox/…``: other providers' contracts, mounted in dev and
tests only), and ``database_unavailable`` of the three system endpoints that never answer
it: ``/health`` reads nothing, ``/ready`` answers any outage as 503 ``not_ready``, and
``/metrics`` leaves out the relay's gauges when the database does not answer them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError, ApplicationError

from api.app import create_app
from api.deps import RedisClient
from api.problems import (
    PROBLEM_EXAMPLES,
    PROBLEM_MEDIA_TYPE,
    REDIS_EXAMPLE,
    TEMPORAL_EXAMPLE,
    entry_codes,
    entry_examples,
)
from api.routes.fulfillments import refused as fulfilment_refused
from cli.stack.process import free_port
from core.db import create_engine
from core.errors import ShopError
from core.settings import Settings
from temporal.clients.connection import WorkflowRefused
from temporal.clients.connection import refusal as temporal_refusal
from tests.api.route_table import operations
from workflows.fulfillment_parcels import as_refusal

NO_DATABASE_OUTAGE = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
# The ids of a request (and the path it was sent to) differ from one answer to the next.
PER_REQUEST = ("instance", "requestId", "traceId")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(shop_env="test", jwt_secret="x" * 40, search_index=False))
    spec: dict[str, Any] = app.openapi()
    return spec


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        if path.startswith("/_sandbox/"):
            continue
        for method, operation in methods.items():
            yield method.upper(), path, operation


def _codes(operation: dict[str, Any], status: str) -> set[str]:
    return entry_codes(operation["responses"].get(status, {}))


def test_every_operation_documents_a_bug_and_the_databases_outage(
    document: dict[str, Any],
) -> None:
    without_500: list[str] = []
    without_503: list[str] = []
    for method, path, operation in _operations(document):
        if "internal_error" not in _codes(operation, "500"):
            without_500.append(f"{method} {path}")
        if "database_unavailable" not in _codes(operation, "503"):
            without_503.append(f"{method} {path}")
            continue
        unavailable = operation["responses"]["503"]
        assert "Retry-After" in unavailable["headers"], (method, path)
    assert without_500 == []
    assert {tuple(name.split(" ", 1)) for name in without_503} == NO_DATABASE_OUTAGE


def test_every_temporal_outage_documents_retry_after(document: dict[str, Any]) -> None:
    """A workflow out of reach (``dependency_unavailable``) or no connection to Temporal
    (``temporal_unavailable``) is answered with ``Retry-After``, as the document says."""
    temporal = 0
    for method, path, operation in _operations(document):
        codes = _codes(operation, "503")
        if "temporal_unavailable" not in codes:
            continue
        temporal += 1
        header = operation["responses"]["503"]["headers"]["Retry-After"]
        for code in ("temporal_unavailable", "dependency_unavailable"):
            assert f"`{code}`" in header["description"], (method, path)
    assert temporal > 0


def test_every_error_that_sends_retry_after_documents_it(document: dict[str, Any]) -> None:
    """An error class that declares ``retry_after_seconds`` answers with ``Retry-After``
    (``core.errors.ShopError``); wherever an operation lists its code, the document
    lists the header (``order_being_handed_over`` was sent with it, not documented)."""
    classes: list[type[ShopError]] = [ShopError]
    retried: set[str] = set()
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if cls.retry_after_seconds is not None and not cls.__module__.startswith("tests."):
            retried.add(cls.code)
    assert "order_being_handed_over" in retried
    listed = 0
    for method, path, operation in _operations(document):
        for status, entry in operation["responses"].items():
            if not status.startswith("5"):
                continue
            for code in retried & set(_codes(operation, status)):
                listed += 1
                header = entry.get("headers", {}).get("Retry-After")
                assert header is not None, (method, path, code)
                assert f"`{code}`" in header["description"], (method, path, code)
    assert listed > 0


def test_every_documented_server_error_has_its_example(document: dict[str, Any]) -> None:
    checked = 0
    shown_codes = {example["value"]["code"] for example in PROBLEM_EXAMPLES.values()}
    for method, path, operation in _operations(document):
        for status in ("500", "503"):
            entry = operation["responses"].get(status)
            if entry is None:
                continue
            examples = entry["content"][PROBLEM_MEDIA_TYPE].get("examples", {})
            for name, example in examples.items():
                assert example == PROBLEM_EXAMPLES[name], (method, path, name)
                assert example["value"]["code"] in entry_codes(entry), (method, path, name)
                assert str(example["value"]["status"]) == status, (method, path)
                checked += 1
            shown = {example["value"]["code"] for example in examples.values()}
            assert entry_codes(entry) & shown_codes <= shown, (method, path)
    assert checked > 300


# The operations that call a workflow on the request's path (temporal/clients): an
# update, a signal or a query, not a start (that is relayed after the commit when
# Temporal is away, never answered 503).
CALLS_A_WORKFLOW = {
    "POST /api/orders/{order_id}/cancel",
    "POST /api/admin/fulfillments/{fulfillment_id}/shipments",
    "POST /api/admin/fulfillments/{fulfillment_id}/hold",
    "POST /api/admin/fulfillments/{fulfillment_id}/release",
    "POST /api/admin/fulfillments/{fulfillment_id}/cancel",
    "POST /api/admin/shipments/{shipment_id}/address",
    "POST /api/admin/returns/{return_id}/approve",
    "POST /api/admin/returns/{return_id}/decline",
    "POST /api/admin/returns/{return_id}/receive",
    "POST /api/payments/webhooks/stripe",
    "POST /api/shipping/webhooks/easypost",
}


def _outage_examples(operation: dict[str, Any]) -> set[str]:
    entry = operation["responses"].get("503", {})
    return entry_examples(entry) & {REDIS_EXAMPLE, TEMPORAL_EXAMPLE, "temporal_unavailable"}


def test_each_outage_example_names_the_dependency_the_operation_reaches(
    document: dict[str, Any],
) -> None:
    """503 ``dependency_unavailable`` was shown as "Redis did not answer" where Temporal
    is what answered it (cancelling an order, the payment and carrier webhooks, the
    fulfilment and return actions): each dependency now has its own example, and an
    operation shows those of the dependencies it reaches, Redis' and Temporal's apart."""
    by_name = {f"{method} {path}": op for method, path, op in _operations(document)}
    assert set(by_name) >= CALLS_A_WORKFLOW
    for name, operation in by_name.items():
        shown = _outage_examples(operation)
        codes = _codes(operation, "503")
        if name not in CALLS_A_WORKFLOW:
            # Redis' outage alone: its example wherever the code is answered.
            assert shown == ({REDIS_EXAMPLE} if "dependency_unavailable" in codes else set()), name
            continue
        temporal = {TEMPORAL_EXAMPLE, "temporal_unavailable"}
        assert "temporal_unavailable" in codes, name
        # Redis' too where a token is checked (its revocation is read there).
        assert shown == temporal | ({REDIS_EXAMPLE} if operation.get("security") else set()), name
    # The webhooks take no token: Temporal's examples alone.
    assert _outage_examples(by_name["POST /api/payments/webhooks/stripe"]) == {
        TEMPORAL_EXAMPLE,
        "temporal_unavailable",
    }


def test_operations_that_read_redis_document_its_outage(document: dict[str, Any]) -> None:
    by_name = {f"{method} {path}": op for method, path, op in _operations(document)}
    redis = {name for name, op in by_name.items() if "dependency_unavailable" in _codes(op, "503")}
    # Every signed-in operation: the token's revocation is checked in Redis.
    signed_in = {name for name, op in by_name.items() if op.get("security")}
    assert len(signed_in) > 90
    assert signed_in <= redis, sorted(signed_in - redis)
    # Sign-in counts failures in Redis and tracking rate-limits there (their outage is
    # answered so: tests/api/test_system.py); /metrics reads the shared counters there.
    for name in ("POST /api/auth/login", "POST /api/analytics/track", "GET /metrics"):
        assert name in redis, name
    # A guest's read that Redis only caches (a miss reads the database) does not.
    for name in ("GET /api/categories", "GET /api/returns/reasons", "GET /health"):
        assert name not in redis, name


def test_an_operation_that_takes_the_redis_client_documents_its_outage() -> None:
    app = create_app(Settings(shop_env="test", jwt_secret="x" * 40, search_index=False))
    taking = [
        op
        for op in operations(app)
        if any(getattr(call, "__name__", "") == "get_redis" for call in op.dependencies)
    ]
    assert any(op.path == "/api/analytics/track" for op in taking)

    @app.get("/api/_test/redis")
    async def reads_redis(redis: RedisClient) -> None:
        """Reads Redis."""

    spec = app.openapi()
    assert "dependency_unavailable" in _codes(spec["paths"]["/api/_test/redis"]["get"], "503")


def _without_request_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in PER_REQUEST}


def assert_is_the_example(
    response: httpx.Response, name: str, *, detail: re.Pattern[str] | None = None
) -> None:
    """``response`` is the OpenAPI document's example ``name`` but for the request's own
    ids (tests/api/test_system.py holds Redis' to it too, the carrier webhook's tests
    Temporal's); with ``detail``, a pattern that the example's ``detail`` and the
    response's both match (it names what the request was about)."""
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    example = PROBLEM_EXAMPLES[name]["value"]
    answered = response.json()
    if detail is not None:
        assert detail.fullmatch(example["detail"]), example["detail"]
        assert detail.fullmatch(answered["detail"]), answered["detail"]
        answered = answered | {"detail": example["detail"]}
    assert _without_request_ids(answered) == _without_request_ids(example)
    assert set(example) == set(answered)


async def test_the_examples_are_what_the_api_answers(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    away = f"postgresql+asyncpg://shop@127.0.0.1:{free_port()}/shop"
    unreachable = create_engine(settings.model_copy(update={"database_url": away}))

    async def broken() -> None:
        raise RuntimeError("a bug")

    async def database_away() -> None:
        async with unreachable.connect() as connection:
            await connection.execute(text("SELECT 1"))

    app.add_api_route("/api/_test/broken", broken)
    app.add_api_route("/api/_test/database-away", database_away)
    try:
        response = await client.get("/api/_test/broken")
        assert response.status_code == 500
        example = PROBLEM_EXAMPLES["internal_error"]["value"]
        request_id = response.json()["requestId"]
        assert response.json()["detail"] == example["detail"].replace(
            example["requestId"], request_id
        )
        assert _without_request_ids(response.json() | {"detail": example["detail"]}) == (
            _without_request_ids(example)
        )
        response = await client.get("/api/_test/database-away")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert_is_the_example(response, "database_unavailable")
    finally:
        await unreachable.dispose()


# The fulfilment actions, whose workflow Update answers ``fulfillment_unavailable`` when
# its step gave up (``workflows.fulfillment_parcels.as_refusal``).
FULFILMENT_ACTIONS = {
    ("POST", "/api/admin/fulfillments/{fulfillment_id}/shipments"),
    ("POST", "/api/admin/fulfillments/{fulfillment_id}/hold"),
    ("POST", "/api/admin/fulfillments/{fulfillment_id}/release"),
    ("POST", "/api/admin/fulfillments/{fulfillment_id}/cancel"),
}


def test_the_fulfilment_actions_declare_their_step_unavailable(
    document: dict[str, Any],
) -> None:
    declaring = {
        (method, path)
        for method, path, operation in _operations(document)
        if "fulfillment_unavailable" in _codes(operation, "503")
    }
    assert declaring == FULFILMENT_ACTIONS
    for method, path in FULFILMENT_ACTIONS:
        entry = document["paths"][path][method.lower()]["responses"]["503"]
        assert "fulfillment_unavailable" in entry_examples(entry), (method, path)
        assert "`fulfillment_unavailable`" in entry["headers"]["Retry-After"]["description"]


async def test_a_fulfilment_step_that_gave_up_is_answered_as_the_example(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The workflow's refusal as the client gets it back (``refusal``) and the route
    answers it (``refused``): 503 ``fulfillment_unavailable`` with ``Retry-After``."""
    step = ActivityError(
        "activity error",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="fulfillment.hold",
        activity_id="1",
        retry_state=None,
    )
    step.__cause__ = ApplicationError("the database did not answer", type="TimeoutError")
    update_failed = WorkflowUpdateFailedError(as_refusal(step))
    update_failed.__cause__ = update_failed.cause

    async def step_gave_up() -> None:
        refusal = temporal_refusal(update_failed, "fulfilment ful_…")
        assert isinstance(refusal, WorkflowRefused)
        fulfilment_refused(refusal)

    app.add_api_route("/api/_test/fulfilment-step", step_gave_up)
    response = await client.get("/api/_test/fulfilment-step")
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert_is_the_example(response, "fulfillment_unavailable")
