"""A field a request body does not know is refused (422 ``unknown_field``), never ignored.

Every JSON body of ``/api`` is a ``models.base.RequestModel``; answers (and the workflow
inputs, snapshots and events that old histories and rows hold) ignore extra fields, and
the sandboxes and providers' webhooks take the providers' whole payloads.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from api.app import create_app
from api.problems import entry_codes
from core.settings import Settings
from models.base import RequestModel
from tests.factories import signed_up, unique_email, unique_slug


@pytest.fixture(scope="module")
def routes_app() -> FastAPI:
    return create_app(Settings(shop_env="test", jwt_secret="x" * 40, search_index=False))


def _models(annotation: Any, found: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """Every model in ``annotation``, however deep (fields, lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in found:
            found.add(annotation)
            for field in annotation.model_fields.values():
                _models(field.annotation, found)
        return found
    for arg in typing.get_args(annotation):
        _models(arg, found)
    return found


def _bodies(dependant: Dependant) -> Iterator[Any]:
    for param in dependant.body_params:
        yield param.field_info.annotation
    for dependency in dependant.dependencies:
        yield from _bodies(dependency)


def _operations(app: FastAPI) -> Iterator[tuple[str, Any]]:
    """(path, body annotation) of every operation that takes a body."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path_format:
            for body in _bodies(context.dependant):
                yield context.path_format, body


def test_every_request_body_of_the_api_refuses_unknown_fields(routes_app: FastAPI) -> None:
    lenient: list[str] = []
    bodies = 0
    for path, body in _operations(routes_app):
        if not path.startswith("/api/"):
            continue  # the sandboxes speak for their providers (checked below)
        bodies += 1
        for model in _models(body, set()):
            if model.model_config.get("extra") != "forbid" or not issubclass(model, RequestModel):
                lenient.append(f"{path}: {model.__module__}.{model.__qualname__}")
    assert bodies > 40  # the walk sees the API's bodies
    assert lenient == [], "request models that ignore unknown fields:\n" + "\n".join(lenient)


def test_the_document_says_so(routes_app: FastAPI) -> None:
    """Each body's schema has ``additionalProperties: false`` and its operation lists 422
    ``unknown_field``; the providers' webhook receivers (raw bodies) do not."""
    spec = routes_app.openapi()
    schemas = spec["components"]["schemas"]
    undeclared: list[str] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation or not path.startswith("/api/"):
                continue
            codes = entry_codes(operation["responses"].get("422", {}))
            if ("unknown_field" in codes) == path.startswith("/api/shipping/webhooks/"):
                undeclared.append(f"{method.upper()} {path}")
    assert undeclared == []
    for name in ("ProductUpdate", "OrderCreate", "ShippingAddressIn", "UserCreate"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["ProductPublic"]


def test_answers_and_the_sandboxes_take_extra_fields(routes_app: FastAPI) -> None:
    """Forbidding stops at requests: an answer's model (also read back from stored rows
    and histories) and a sandbox's body keep pydantic's default."""
    strict: list[str] = []
    sandboxes = 0
    for context in iter_route_contexts(routes_app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.response_model is not None:
            for model in _models(route.response_model, set()):
                if model.model_config.get("extra") == "forbid":
                    strict.append(f"{context.path_format} answer: {model.__qualname__}")
    for path, body in _operations(routes_app):
        if path.startswith("/_sandbox/"):
            sandboxes += 1
            strict.extend(
                f"{path}: {model.__qualname__}"
                for model in _models(body, set())
                if model.model_config.get("extra") == "forbid"
            )
    assert sandboxes > 0
    assert strict == []


def _unknown(response: httpx.Response, field: str, hint: str | None = None) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "unknown_field", problem
    named = [e for e in problem["errors"] if e["type"] == "unknown_field"]
    assert [(e["field"], e["in"]) for e in named] == [(field, "body")], problem
    assert f"unknown field {field}" in problem["detail"]
    if hint is not None:
        assert f"did you mean {hint}?" in named[0]["message"], problem
    return problem


async def test_a_product_patch_with_a_field_it_does_not_know_changes_nothing(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    created = await client.post(
        "/api/products",
        headers=staff,
        json={"sku": unique_slug("sku"), "name": "Typo Proof", "price": 1000},
    )
    assert created.status_code == 201, created.text
    path = f"/api/products/{created.json()['id']}"

    _unknown(
        await client.patch(path, headers=staff, json={"isActive": False}), "isActive", "active"
    )
    # With a good field beside it, nothing is applied either.
    _unknown(
        await client.patch(path, headers=staff, json={"price": 5, "isActive": False}),
        "isActive",
    )
    shown = (await client.get(path)).json()
    assert (shown["active"], shown["price"]) == (True, 1000)
    # The field's own name (camelCase, or snake_case as in Python) still works.
    changed = await client.patch(path, headers=staff, json={"active": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["active"] is False


async def test_an_order_with_a_misspelt_field_is_refused_before_it_is_placed(
    client: httpx.AsyncClient,
) -> None:
    _, auth = await signed_up(client)
    address = {"street": "1 Main St", "city": "Boston", "zip": "02101"}
    body: dict[str, Any] = {
        "cartId": "cart_789",
        "shippingAddress": address,
        "paymentMethod": {"type": "card", "token": "pm_card_visa"},
    }
    # A top-level typo: the unknown field gives the code, the missing one is listed too.
    typo = {k: v for k, v in body.items() if k != "cartId"} | {"cartID": "cart_789"}
    problem = _unknown(await client.post("/api/orders", headers=auth, json=typo), "cartID")
    assert {"field": "cartId", "in": "body", "message": "Field required", "type": "missing"} in (
        problem["errors"]
    )
    assert "did you mean cartId?" in problem["detail"]
    # Inside the address, named by its path.
    nested = body | {"shippingAddress": address | {"zipCode": "02101"}}
    _unknown(
        await client.post("/api/orders", headers=auth, json=nested),
        "shippingAddress.zipCode",
        "zip",
    )
    # The seed's body as written still gets as far as its cart (not ours: 404).
    seed = {
        "cartId": "cart_789",
        "shippingAddress": {
            "street": "123 Main St",
            "city": "Boston",
            "state": "MA",
            "zip": "02101",
        },
        "paymentMethod": {"type": "credit_card", "token": "card_token_123"},
    }
    placed = await client.post("/api/orders", headers=auth, json=seed)
    assert placed.status_code == 404, placed.text
    assert placed.json()["code"] == "cart_not_found"


async def test_a_signup_with_an_extra_field_creates_no_account(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email("extra")
    body = {"email": email, "password": "violet tangerine orbit lamp 42", "name": "Ada"}
    _unknown(await client.post("/api/users", json=body | {"role": "admin"}), "role")
    refused = await client.post(
        "/api/auth/login", json={"email": email, "password": body["password"]}
    )
    assert refused.status_code == 401, refused.text
    created = await client.post("/api/users", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "customer"


async def test_a_batch_event_with_an_unknown_field_names_its_place(
    client: httpx.AsyncClient,
) -> None:
    """Inside a list of a tagged union: the tag is left out of the field's path."""
    batch = {"batch": [{"event": "product_view"}, {"event": "product_view", "propertys": {}}]}
    _unknown(
        await client.post("/api/analytics/track", json=batch), "batch.1.propertys", "properties"
    )
