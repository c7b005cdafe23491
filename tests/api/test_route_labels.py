"""Every request is counted under the route it matched, written as a client writes its path
(``/api/products/{key}``, the OpenAPI path): the ``route`` label of ``http_requests_total``
and ``http_request_duration_seconds`` that dashboards and alerts group by, and the name
and ``http.route`` of the request's span (``api/route_templates.py``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.app import API_PREFIX
from core.settings import Settings
from core.telemetry import ProcessRole, tracing_for
from tests.api.route_table import operations
from tests.otlp_receiver import otlp_receiver

SHOP = "https://shop.example.com"
MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


async def counted(http: httpx.AsyncClient) -> dict[tuple[str, str, str], float]:
    """``http_requests_total`` by (method, route, status), as ``/metrics`` says it."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "http_requests_total"
    }


def routes_of(samples: dict[tuple[str, str, str], float]) -> set[tuple[str, str]]:
    return {(method, route) for method, route, _ in samples}


async def test_every_api_route_is_counted_under_its_openapi_path(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    api = [op for op in operations(app) if op.path.startswith(API_PREFIX + "/")]
    assert len(api) > 100
    documented = {
        (method.upper(), path)
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    }
    for operation in api:
        assert (operation.method, operation.path) in documented, operation
        # Anyone's request: most are refused (401, 403, 404, 422...), each by its route.
        path = re.sub(r"\{[^}]+\}", "x1", operation.path)
        await client.request(operation.method, path)
    samples = await counted(client)
    labels = routes_of(samples)
    missing = [str(op) for op in api if (op.method, op.path) not in labels]
    assert missing == [], sorted(labels)
    api_labels = {route for _, route in labels} - {"/metrics"}
    assert all(route.startswith(API_PREFIX + "/") for route in api_labels), api_labels
    assert "unmatched" not in api_labels


async def test_an_answer_given_before_routing_is_counted_under_its_route(
    make_client: MakeClient,
) -> None:
    storefront = await make_client(cors_allowed_origins=SHOP)
    assert (await storefront.options("/api/products/prod_x")).status_code == 204
    allowed = {"Origin": SHOP, "Access-Control-Request-Method": "GET"}
    assert (await storefront.options("/api/products/prod_x", headers=allowed)).status_code == 204
    refused = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"}
    assert (await storefront.options("/api/products/prod_x", headers=refused)).status_code == 403
    samples = await counted(storefront)
    assert samples[("OPTIONS", "/api/products/{key}", "204")] == 2
    assert samples[("OPTIONS", "/api/products/{key}", "403")] == 1


async def test_a_405_is_counted_under_the_route_its_path_matched(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.put("/api/products")).status_code == 405
    assert (await client.patch("/api/openapi.json")).status_code == 405
    assert (await client.get("/api/openapi.json")).status_code == 200
    samples = await counted(client)
    assert samples[("PUT", "/api/products", "405")] == 1
    # A route of Starlette's own (no APIRoute): named too, answered or refused.
    assert samples[("PATCH", "/api/openapi.json", "405")] == 1
    assert samples[("GET", "/api/openapi.json", "200")] == 1


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "DELETE"])
async def test_a_path_no_route_matches_is_unmatched_never_itself(
    client: httpx.AsyncClient, method: str
) -> None:
    for n in range(3):
        assert (await client.request(method, f"/api/no-such-thing/{n}")).status_code == 404
    samples = await counted(client)
    assert samples[(method, "unmatched", "404")] == 3
    assert not [key for key in samples if "no-such-thing" in key[1]]


async def test_a_trailing_slash_redirect_is_counted_under_the_route_it_redirects_to(
    client: httpx.AsyncClient,
) -> None:
    # The router answers a path that matches no route only for its trailing slash with a
    # 307 to the one that does: counted under that route's template (the status tells the
    # redirect apart), not ``unmatched`` with the 404s.
    for path, target in (
        ("/api/products/", "/api/products"),
        ("/api/products/p1/", "/api/products/p1"),
    ):
        response = await client.get(path)
        assert response.status_code == 307, response.text
        assert response.headers["location"].endswith(target)
    assert (await client.delete("/api/cart/items/i1/")).status_code == 307
    assert (await client.get("/api/no-such-thing/")).status_code == 404
    samples = await counted(client)
    assert samples[("GET", "/api/products", "307")] == 1
    assert samples[("GET", "/api/products/{key}", "307")] == 1
    assert samples[("DELETE", "/api/cart/items/{product_id}", "307")] == 1
    assert samples[("GET", "unmatched", "404")] == 1
    assert not [key for key in samples if key[1] == "unmatched" and key[2] == "307"]


async def test_a_method_http_does_not_define_is_counted_as_other_never_itself(
    client: httpx.AsyncClient,
) -> None:
    # The method is the client's to choose (any token): counted as itself, each would be
    # a series of its own, as many as a client cares to send.
    for n in range(3):
        assert (await client.request(f"BREW{n}", "/api/products")).status_code == 405
    samples = await counted(client)
    assert samples[("_OTHER", "/api/products", "405")] == 3
    assert not [key for key in samples if key[0].startswith("BREW")]


async def test_a_request_span_is_named_after_the_route_its_path_matched(
    settings: Settings, make_client: MakeClient
) -> None:
    with otlp_receiver() as receiver:
        overrides = {
            "otel_exporter_otlp_endpoint": receiver.endpoint,
            "cors_allowed_origins": SHOP,
        }
        http = await make_client(**overrides)
        preflight = {"Origin": SHOP, "Access-Control-Request-Method": "GET"}
        assert (await http.options("/api/products/prod_x", headers=preflight)).status_code == 204
        assert (await http.options("/api/categories")).status_code == 204
        assert (await http.get("/api/products/prod_x")).status_code == 404
        assert (await http.get("/api/no-such-thing")).status_code == 404
        assert (await http.get("/api/categories/")).status_code == 307
        traced = Settings.model_validate(settings.model_dump() | overrides)
        tracing = tracing_for(traced, ProcessRole.API)
        assert tracing is not None
        assert tracing.flush()
        spans = receiver.received()
    named = {(s.name, s.attributes.get("http.route")) for s in spans}
    assert ("OPTIONS /api/products/{key}", "/api/products/{key}") in named, named
    assert ("OPTIONS /api/categories", "/api/categories") in named, named
    assert ("GET /api/products/{key}", "/api/products/{key}") in named, named
    assert ("GET /api/categories", "/api/categories") in named, named
    # Unmatched: the method alone, no route (never the path).
    assert ("GET", None) in named, named
