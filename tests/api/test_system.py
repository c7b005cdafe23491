from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from api.app import create_app
from api.problems import REDIS_EXAMPLE
from cli.stack.process import free_port
from core.db import create_engine
from core.errors import Conflict
from core.settings import Settings
from tests.api.test_openapi_server_errors import assert_is_the_example
from tests.factories import ClientFactory

PROBLEM = "application/problem+json"


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"].startswith("req_")


async def test_ready_when_database_redis_and_temporal_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "temporal": "ok"},
    }


async def test_ready_names_the_dependency_that_fails(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["failed"] == ["redis"]
    assert "redis" in body["detail"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["temporal"] == "ok"
    assert body["checks"]["redis"].startswith("error")


async def test_redis_down_is_a_503_where_a_request_needs_it(settings: Settings) -> None:
    """Sign-in counts failures in Redis, tracking rate-limits there: with Redis away they
    answered 500 internal_error; it is a dependency's outage, 503 like /ready's."""
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answers = [
                await http.post(
                    "/api/auth/login",
                    json={"email": "nobody@example.com", "password": "violet tangerine orbit"},
                ),
                await http.post(
                    "/api/analytics/track", json={"event": "size_guide_open", "anonymousId": "a"}
                ),
            ]
    for response in answers:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        # As the OpenAPI document shows it.
        assert_is_the_example(response, REDIS_EXAMPLE)


async def test_an_idempotency_key_with_redis_down_says_when_to_retry(settings: Settings) -> None:
    """A creating POST with an Idempotency-Key is refused while Redis (which keeps the
    keys) is away, rather than risk running it twice: a 503 that, as every other outage
    of a dependency, says when to send it again (it had no Retry-After)."""
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.post(
                "/api/users",
                json={"email": "idem@example.com", "password": "violet tangerine orbit"},
                headers={"Idempotency-Key": "sign-up-1"},
            )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "idempotency_unavailable"
    assert response.headers["retry-after"] == "1"


async def test_ready_reports_temporal_down_but_the_api_still_starts(settings: Settings) -> None:
    broken = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/health")).status_code == 200
            response = await http.get("/ready")
    assert response.status_code == 503
    assert response.json()["failed"] == ["temporal"]


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in response.text
    assert "http_request_duration_seconds_bucket" in response.text


async def test_unknown_path_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["instance"] == "/api/nothing-here"
    assert body["type"] == "urn:shopweave:problem:not_found"
    assert body["requestId"] == response.headers["x-request-id"]


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/products", "GET, HEAD, POST, OPTIONS"),
        ("/api/products/prod_x", "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"),
        ("/api/cart", "GET, HEAD, DELETE, OPTIONS"),
        ("/api/auth/login", "POST, OPTIONS"),
    ],
)
async def test_a_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    """Each method of a path is a route of its own: Allow names them all, not only the
    first route's (which told a client GET was all /api/products takes)."""
    response = await client.request("TRACE", path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed


class _Address(BaseModel):
    street: str
    zip: str


class _Order(BaseModel):
    quantity: int
    address: _Address


@pytest.fixture
async def app_with_probe_routes(settings: Settings) -> FastAPI:
    app = create_app(settings)

    @app.post("/api/_test/validate")
    async def validate(order: _Order) -> dict[str, int]:
        return {"quantity": order.quantity}

    @app.get("/api/_test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/api/_test/sql/{expression}")
    async def sql(expression: str) -> None:
        statements = {"overflow": "SELECT 2147483647::integer + 1", "zero": "SELECT 1 / 0"}
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                await connection.execute(text(statements[expression]))
        finally:
            await engine.dispose()

    @app.get("/api/_test/conflict")
    async def conflict() -> None:
        raise Conflict("that cart was checked out", code="cart_checked_out", cart_id="cart_1")

    return app


@pytest.fixture
async def probe_client(app_with_probe_routes: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app_with_probe_routes, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_invalid_body_is_422_naming_each_field(probe_client: httpx.AsyncClient) -> None:
    async with probe_client as http:
        response = await http.post(
            "/api/_test/validate", json={"quantity": "many", "address": {"street": "x"}}
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"quantity", "address.zip"}
    assert "address.zip" in body["detail"]


async def test_malformed_json_is_422_not_500(probe_client: httpx.AsyncClient) -> None:
    async with probe_client as http:
        response = await http.post(
            "/api/_test/validate",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_typed_errors_keep_their_code_and_extras(probe_client: httpx.AsyncClient) -> None:
    async with probe_client as http:
        response = await http.get("/api/_test/conflict")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "cart_checked_out"
    assert body["detail"] == "that cart was checked out"
    assert body["cartId"] == "cart_1"


async def test_unhandled_error_is_a_500_problem_without_internals(
    probe_client: httpx.AsyncClient,
) -> None:
    async with probe_client as http:
        response = await http.get("/api/_test/boom", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["requestId"] == "trace-42"
    assert "trace-42" in body["detail"]
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_a_value_out_of_a_column_s_range_is_422_another_database_error_500(
    probe_client: httpx.AsyncClient,
) -> None:
    """An overflow in PostgreSQL's own arithmetic reaches us as SQLAlchemy's generic
    DBAPIError (not DataError): still the client's value, 422 invalid_value. A division
    by zero in our SQL is a bug of ours: 500."""
    async with probe_client as http:
        overflow = await http.get("/api/_test/sql/overflow")
        zero = await http.get("/api/_test/sql/zero")
    assert overflow.status_code == 422, overflow.text
    assert overflow.json()["code"] == "invalid_value"
    assert zero.status_code == 500, zero.text
    assert zero.json()["code"] == "internal_error"


async def test_openapi_and_docs_are_under_api(client: httpx.AsyncClient) -> None:
    spec = await client.get("/api/openapi.json")
    assert spec.status_code == 200
    document = spec.json()
    assert document["info"]["title"] == "Shopweave API"
    assert "/ready" in document["paths"]
    assert "Problem" in document["components"]["schemas"]
    ready_503 = document["paths"]["/ready"]["get"]["responses"]["503"]
    assert PROBLEM in ready_503["content"]
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_readiness_does_not_show_raw_errors(make_client: ClientFactory) -> None:
    port = free_port()
    client = await make_client(redis_url=f"redis://127.0.0.1:{port}/0")
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")
    assert str(port) not in response.text
