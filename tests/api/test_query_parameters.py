"""A query string is read as strictly as a body (``api/query_parameters.py``): a
parameter the route does not declare answers 422 ``unknown_parameter``, a scalar one
given twice 422 ``repeated_parameter``, an integer not written plainly (``1_0``, ``+5``)
422 ``validation_error``; never ignored, never read as something else.

Every ``/api`` operation is walked, as ``test_unknown_fields`` walks every body: each
refuses a parameter it does not know and takes every one its document lists.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query

from api.app import create_app
from api.errors import install_error_handlers
from api.problems import entry_codes
from api.query_parameters import QueryRules, checks_query, refuse_unexpected_query
from core.settings import Settings
from tests.api.route_table import Operation, operations
from tests.factories import signed_up, stocked_product, unique_slug

# Called by the providers at the URL the operator gave them: whatever query it carries.
PROVIDER_WEBHOOKS = frozenset({"/api/payments/webhooks/stripe", "/api/shipping/webhooks/easypost"})


@pytest.fixture(scope="module")
def routes_app() -> FastAPI:
    return create_app(Settings(shop_env="test", jwt_secret="x" * 40, search_index=False))


def _operations(app: FastAPI) -> list[Operation]:
    return [op for op in operations(app) if op.path.startswith("/api/")]


def test_every_api_operation_checks_its_query_against_what_its_document_lists(
    routes_app: FastAPI,
) -> None:
    spec = routes_app.openapi()
    unchecked: list[str] = []
    for op in _operations(routes_app):
        method, path = op.method, op.path
        rules = QueryRules.of(op.dependant) if checks_query(op.dependencies) else None
        operation = spec["paths"][path][method.lower()]
        codes = entry_codes(operation["responses"].get("422", {}))
        if path in PROVIDER_WEBHOOKS:
            assert rules is None, path
            assert "unknown_parameter" not in codes, path
            continue
        if rules is None:
            unchecked.append(f"{method} {path}")
            continue
        documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert rules.known == documented, (method, path)
        assert "unknown_parameter" in codes, (method, path)
        assert ("repeated_parameter" in codes) == bool(documented), (method, path)
    assert len(_operations(routes_app)) > 100  # the walk sees the API
    assert unchecked == []


def _value(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    """A value the parameter's schema takes, written as a client would."""
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            option = spec["components"]["schemas"][option["$ref"].rsplit("/", 1)[-1]]
        if "enum" in option:
            return str(option["enum"][0])
        if option.get("type") == "integer":
            return str(option.get("default", option.get("minimum", 1)))
        if option.get("type") == "boolean":
            return "true"
        if option.get("format") == "date-time":
            return "2026-01-31T12:00:00Z"
        if option.get("type") == "string":
            return "US" if option.get("minLength") == 2 else "x"
    raise AssertionError(f"no value for {schema}")


async def test_every_api_operation_refuses_an_unknown_parameter_and_takes_its_own(
    routes_app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Checked before the operation's own dependencies: no token or body is needed to
    see the answer (nothing has run)."""
    spec = routes_app.openapi()
    wrong: list[str] = []
    for op in _operations(routes_app):
        method, path = op.method, op.path
        if path in PROVIDER_WEBHOOKS:
            continue
        target = path.replace("{", "").replace("}", "")  # a path parameter: its name
        operation = spec["paths"][path][method.lower()]
        unknown = await client.request(method, target, params={"zz": "1"})
        if unknown.status_code != 422 or unknown.json()["code"] != "unknown_parameter":
            wrong.append(f"{method} {path}?zz=1: {unknown.status_code} {unknown.text[:200]}")
        own = {
            p["name"]: _value(p["schema"], spec)
            for p in operation.get("parameters", [])
            if p["in"] == "query" and p["name"] != "until"  # a long poll: not waited for
        }
        if own:
            taken = await client.request(method, target, params=own)
            codes = {e["type"] for e in taken.json().get("errors", [])}
            if codes & {"unknown_parameter", "repeated_parameter", "int_parsing"}:
                wrong.append(f"{method} {path}?{own}: {taken.text[:300]}")
    assert wrong == []


async def test_the_provider_webhooks_take_whatever_query_their_url_has(
    client: httpx.AsyncClient,
) -> None:
    stripe = await client.post("/api/payments/webhooks/stripe?endpoint=shop1", content=b"{}")
    assert stripe.status_code == 400, stripe.text
    assert stripe.json()["code"] == "missing_signature"


def _problem(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    return problem


def _named(problem: dict[str, Any], kind: str) -> list[tuple[str, str, str]]:
    return [(e["field"], e["in"], e["message"]) for e in problem["errors"] if e["type"] == kind]


async def test_a_misspelt_catalogue_filter_is_refused_with_the_one_meant(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    slug = unique_slug("headphones")
    made = await client.post(
        "/api/categories", headers=staff, json={"name": "Headphones", "slug": slug}
    )
    assert made.status_code == 201, made.text
    await stocked_product(client, staff, price=1000, stock=1, categoryId=made.json()["id"])
    problem = _problem(await client.get(f"/api/products?categry={slug}"), "unknown_parameter")
    assert _named(problem, "unknown_parameter") == [
        ("categry", "query", "not a parameter of this request; did you mean category?")
    ]
    assert problem["detail"] == (
        "unknown parameter categry: not a parameter of this request; did you mean category?"
    )
    # Python's name of a camelCase parameter is not it either; the detail of a product
    # takes no parameter at all (its guest read before FastAPI leaves a query to it).
    snake = _problem(await client.get("/api/products?min_price=5"), "unknown_parameter")
    assert "did you mean minPrice?" in snake["detail"]
    product = (await client.get(f"/api/products?category={slug}")).json()["items"][0]
    for _ in range(2):  # the second would be a kept answer, were the first kept
        _problem(await client.get(f"/api/products/{product['id']}?_=1"), "unknown_parameter")
    assert (await client.get(f"/api/products/{product['id']}")).status_code == 200


async def test_orders_staff_search_and_analytics_refuse_an_unknown_parameter(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    _, customer = await signed_up(client)
    orders = _problem(await client.get("/api/orders?pag=2", headers=customer), "unknown_parameter")
    assert _named(orders, "unknown_parameter") == [
        ("pag", "query", "not a parameter of this request; did you mean page?")
    ]
    search = await client.get("/api/admin/orders?customer=cus_1&status=paid", headers=staff)
    assert "did you mean customerId?" in _problem(search, "unknown_parameter")["detail"]
    dashboard = await client.get("/api/analytics/dashboard?timerange=7d", headers=staff)
    assert "did you mean timeRange?" in _problem(dashboard, "unknown_parameter")["detail"]
    # Nothing close: named, with no guess.
    track = await client.post("/api/analytics/track?v=2", json={"event": "product_view"})
    assert _named(_problem(track, "unknown_parameter"), "unknown_parameter") == [
        ("v", "query", "not a parameter of this request")
    ]


async def test_a_scalar_parameter_given_twice_is_refused(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    problem = _problem(await client.get("/api/products?page=1&page=3"), "repeated_parameter")
    assert _named(problem, "repeated_parameter") == [
        ("page", "query", "given 2 times; it takes one value")
    ]
    assert problem["detail"] == "repeated parameter page: given 2 times; it takes one value"
    listed = await client.get("/api/admin/orders?status=paid&status=failed", headers=staff)
    _problem(listed, "repeated_parameter")


@pytest.mark.parametrize("written", ["1_0", "+5", " 5", "5 ", "05", "5.0"])
async def test_an_integer_not_written_plainly_is_refused(
    client: httpx.AsyncClient, written: str
) -> None:
    """Pydantic's lax mode reads each of these as a number (``1_0`` as 10)."""
    problem = _problem(
        await client.get("/api/products", params={"limit": written}), "validation_error"
    )
    [error] = problem["errors"]
    assert (error["field"], error["in"], error["type"]) == ("limit", "query", "int_parsing")
    assert "no underscores" in error["message"]


async def test_integers_written_plainly_are_read(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/products?limit=10&page=1")).json()["limit"] == 10
    below = _problem(await client.get("/api/products?minPrice=-1"), "validation_error")
    assert [e["type"] for e in below["errors"]] == ["greater_than_equal"]


@pytest.mark.parametrize("written", ["1", "0", "yes", "no", "on", "t", "y", "True", "FALSE", ""])
async def test_a_boolean_not_written_true_or_false_is_refused(
    client: httpx.AsyncClient, written: str
) -> None:
    """Pydantic's lax mode reads each of these as a boolean (``yes`` as true)."""
    _, auth = await signed_up(client)
    for path, name in (("/api/products", "inStock"), ("/api/notifications", "unread")):
        response = await client.get(path, params={name: written}, headers=auth)
        [error] = _problem(response, "validation_error")["errors"]
        assert (error["field"], error["in"], error["type"]) == (name, "query", "bool_parsing")
        assert error["message"] == "Input should be a valid boolean, written as true or false"


async def test_booleans_written_true_or_false_are_read(client: httpx.AsyncClient) -> None:
    _, auth = await signed_up(client)
    for written in ("true", "false"):
        listed = await client.get("/api/notifications", params={"unread": written}, headers=auth)
        assert listed.status_code == 200, listed.text
        assert (await client.get("/api/products", params={"inStock": written})).status_code == 200


async def test_the_unknown_parameter_gives_the_code_and_the_rest_is_listed(
    client: httpx.AsyncClient,
) -> None:
    problem = _problem(
        await client.get("/api/products?serch=lamp&limit=1_0&sort=cheapest&page=1&page=2"),
        "unknown_parameter",
    )
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [
        ("serch", "unknown_parameter"),
        ("limit", "int_parsing"),
        ("page", "repeated_parameter"),
        ("sort", "enum"),
    ]
    assert problem["detail"].startswith(
        "unknown parameter serch: not a parameter of this request; did you mean search?; "
        "repeated parameter page: given 2 times"
    )


async def test_a_list_parameter_takes_several_values() -> None:
    """No /api route takes one today; the rule lets one do it when it comes."""
    router = APIRouter()

    @router.get("/tagged")
    async def tagged(tag: Annotated[list[str], Query()], page: int = 1) -> dict[str, Any]:
        return {"tags": tag, "page": page}

    app = FastAPI()
    app.include_router(router, dependencies=[Depends(refuse_unexpected_query)])
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        many = await http.get("/tagged?tag=a&tag=b&page=2")
        assert many.json() == {"tags": ["a", "b"], "page": 2}
        twice = await http.get("/tagged?tag=a&page=2&page=2")
        assert twice.json()["code"] == "repeated_parameter"
