"""What a person types is refused with control characters or bidirectional overrides in
it (models.base.SingleLineText, MultilineText), and a 422 names fields as the client sent
them, never by pydantic's internal types (a union's members, a model's class)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError

from api.app import create_app
from core.settings import Settings
from models.base import CONTROL_CHARACTER, UNION_TAG_MARK
from models.carts import CouponApply
from models.catalog import CategoryCreate, ProductCreate, ProductUpdate, ReviewCreate
from models.fulfillment_api import FulfillmentCancel, FulfillmentHold
from models.inventory import StockAdjustment
from models.order_api import OrderCancel, RefundCreate, ShippingAddressIn
from models.pricing import CouponCheck, DiscountCreate
from models.returns import ReturnCreate, ReturnDecline, ReturnSettle
from models.users import AddressCreate, AddressUpdate, UserCreate, UserReplace, UserUpdate
from models.webhooks import WebhookEndpointCreate, WebhookEndpointUpdate
from tests.factories import signed_up, unique_slug

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Ada \u202enamreG" displays as "Ada German"

# Every human-entered text of a request: (model, field, other fields it needs, newlines).
_ADDRESS = {"name": "Ada", "street": "1 Main St", "city": "Boston", "zip": "02101", "country": "US"}
HUMAN_TEXT: list[tuple[type[BaseModel], str, dict[str, Any], bool]] = [
    (CategoryCreate, "name", {"slug": "c"}, False),
    (ProductCreate, "name", {"sku": "s", "price": 1}, False),
    (ProductCreate, "description", {"sku": "s", "name": "n", "price": 1}, True),
    (ProductUpdate, "name", {}, False),
    (ProductUpdate, "description", {}, True),
    (ReviewCreate, "title", {"rating": 5, "body": "b"}, False),
    (ReviewCreate, "body", {"rating": 5, "title": "t"}, True),
    (UserCreate, "name", {"email": "a@example.com", "password": "p" * 12}, False),
    (UserUpdate, "name", {}, False),
    (UserReplace, "name", {"email": "a@example.com"}, False),
    *[
        (model, field, {k: v for k, v in _ADDRESS.items() if k != field}, False)
        for model in (AddressCreate, ShippingAddressIn)
        for field in ("name", "street", "city", "state", "zip", "phone")
    ],
    *[(AddressUpdate, field, {}, False) for field in ("name", "street", "city", "zip")],
    (CouponApply, "code", {}, False),
    (CouponCheck, "code", {"subtotal": 100}, False),
    (
        DiscountCreate,
        "name",
        {"kind": "percentage", "percent": 10, "productId": "p", "startsAt": "2026-01-01T00:00:00Z"},
        False,
    ),
    (StockAdjustment, "reason", {"delta": 1}, True),
    (FulfillmentHold, "reason", {}, True),
    (FulfillmentCancel, "reason", {}, True),
    (OrderCancel, "reason", {}, True),
    (RefundCreate, "reason", {}, True),
    (
        ReturnCreate,
        "note",
        {"lines": [{"productId": "p", "quantity": 1}], "reason": "damaged"},
        True,
    ),
    (ReturnDecline, "reason", {}, True),
    (ReturnSettle, "note", {"amount": 0}, True),
    (WebhookEndpointCreate, "description", {"url": "https://e.example", "eventTypes": ["*"]}, True),
    (WebhookEndpointUpdate, "description", {}, True),
]


def _errors(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()]
    return []


@pytest.mark.parametrize(
    ("model", "field", "others", "multiline"),
    HUMAN_TEXT,
    ids=[f"{m.__name__}.{f}" for m, f, _, _ in HUMAN_TEXT],
)
def test_human_text_refuses_bidi_overrides_and_controls(
    model: type[BaseModel], field: str, others: dict[str, Any], multiline: bool
) -> None:
    """Before, each of these took "Ada \u202enamreG" (and U+2066 isolates, C0 and C1
    controls) and showed it reversed in staff tools and emails."""
    wire = model.model_fields[field].alias or field
    assert (
        _errors(model, others | {wire: "Fine text, \u00e9t\u00e9 \u05e9\u05dc\u05d5\u05dd"}) == []
    )
    for bad in (f"Ada {RLO}namreG", "a\u2066b\u2069", "bell\x07!", "c1\x85!", "del\x7f!"):
        assert _errors(model, others | {wire: bad}) == [(wire, CONTROL_CHARACTER)], bad
    # A tab is white space; newlines only where the field is several lines of text.
    assert _errors(model, others | {wire: "a\tb"}) == []
    lines = _errors(model, others | {wire: "line one\r\nline two"})
    assert lines == ([] if multiline else [(wire, CONTROL_CHARACTER)])


async def test_a_name_with_a_bidi_override_is_422_naming_it_and_nothing_is_made(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """A product named "Headphones \u202e..." was created (201) and displayed reversed."""
    sku = unique_slug("sku")
    refused = await client.post(
        "/api/products",
        headers=staff,
        json={"sku": sku, "name": f"Headphones {RLO}ten.lapyap", "price": 100},
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "validation_error"
    assert problem["detail"] == "invalid: name"
    assert problem["errors"] == [
        {
            "field": "name",
            "in": "body",
            "message": "must be one line of text without control characters or "
            "bidirectional overrides; found U+202E (RIGHT-TO-LEFT OVERRIDE) at character 12",
            "type": CONTROL_CHARACTER,
        }
    ]
    listed = await client.get("/api/products", params={"search": sku})
    assert listed.json()["total"] == 0

    # A shopper's name and address alike; a review's body keeps its newlines.
    user, headers = await signed_up(client)
    renamed = await client.patch(
        f"/api/users/{user['id']}", headers=headers, json={"name": f"Ada {RLO}namreG"}
    )
    assert renamed.status_code == 422, renamed.text
    assert [(e["field"], e["type"]) for e in renamed.json()["errors"]] == [
        ("name", CONTROL_CHARACTER)
    ]
    address = await client.post(
        f"/api/users/{user['id']}/addresses",
        headers=headers,
        json=_ADDRESS | {"street": "1 Main St\n2 Other St"},
    )
    assert address.status_code == 422, address.text
    assert [(e["field"], e["type"]) for e in address.json()["errors"]] == [
        ("street", CONTROL_CHARACTER)
    ]
    unchanged = await client.get(f"/api/users/{user['id']}", headers=headers)
    assert unchanged.json()["name"] == user["name"]
    category = await client.post(
        "/api/categories",
        headers=staff,
        json={"name": f"Audio{RLO}", "slug": unique_slug("cat")},
    )
    assert [(e["field"], e["type"]) for e in category.json()["errors"]] == [
        ("name", CONTROL_CHARACTER)
    ]


# --- unions and models: named as the client sent them ---------------------------------


@pytest.fixture(scope="module")
def routes_app() -> FastAPI:
    return create_app(Settings(shop_env="test", jwt_secret="x" * 40, search_index=False))


def _body_schemas(dependant: Dependant) -> Iterator[Any]:
    """The core schema each body is validated with (as FastAPI builds it: with its
    ``Annotated`` metadata, a discriminator for one)."""
    for param in dependant.body_params:
        yield param._type_adapter.core_schema
    for dependency in dependant.dependencies:
        yield from _body_schemas(dependency)


def _unions(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every union in a core schema, with where it is; not those inside one that gives
    its own error (theirs never show)."""
    if isinstance(schema, dict):
        if schema.get("type") == "union" or schema.get("type") == "tagged-union":
            yield path, schema
            if "custom_error_type" in schema:
                return
        for key, value in schema.items():
            yield from _unions(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _unions(value, f"{path}[{i}]")


def test_every_union_of_a_request_body_names_its_error_in_the_clients_words(
    routes_app: FastAPI,
) -> None:
    """A union's members show in an error's location by their internal names
    (``properties.level.list[nullable[union[bool,int,float,str]]]``, a model's class):
    each union of a body gives one error of its own (models.base.UnionError), and a
    tagged union's tags are marked to be left out (models.base.union_tag)."""
    plain: list[str] = []
    for route in iter_route_contexts(routes_app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        for schema in _body_schemas(route.dependant):
            for where, union in _unions(schema):
                if union["type"] == "tagged-union":
                    tags = [str(t) for t in union["choices"]]
                    if not all(t.startswith(UNION_TAG_MARK) for t in tags):
                        plain.append(f"{route.path_format}: {where} tags {tags}")
                elif "custom_error_type" not in union:
                    plain.append(f"{route.path_format}: {where}")
    assert plain == []


async def test_a_property_of_no_accepted_type_is_one_error_naming_it(
    client: httpx.AsyncClient,
) -> None:
    """JSON's non-standard Infinity and NaN passed no member of the property's union: five
    errors, at ``properties.level.bool`` ... ``properties.level.list[nullable[union[bool,
    int,float,str]]]``. One now, at the property."""
    message = "a property is a string, a finite number, true, false, null, or an array of those"
    for body, field in [
        ('{"event": "zoom", "properties": {"level": Infinity}}', "properties.level"),
        ('{"event": "zoom", "properties": {"levels": [1, NaN]}}', "properties.levels"),
        (
            '{"batch": [{"event": "zoom"}, {"event": "zoom", "properties": {"x": -Infinity}}]}',
            "batch.1.properties.x",
        ),
    ]:
        answer = await client.post(
            "/api/analytics/track", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert problem["code"] == "invalid_property_value"
        assert problem["detail"] == f"{field}: {message}"
        assert problem["errors"] == [
            {"field": field, "in": "body", "message": message, "type": "invalid_property_value"}
        ]


async def test_an_object_of_the_wrong_type_is_asked_for_in_json_terms(
    client: httpx.AsyncClient,
) -> None:
    """Pydantic asks for "a valid dictionary or object to extract fields from" (and, where
    a model is validated as such, "a valid dictionary or instance of ShippingAddressIn",
    a class of ours): Python's words. JSON has objects."""
    track = await client.post("/api/analytics/track", json=[{"event": "zoom"}])
    assert track.status_code == 422, track.text
    assert track.json()["errors"] == [
        {
            "field": "body",
            "in": "body",
            "message": "Input should be an object",
            "type": "model_attributes_type",
        }
    ]
    _user, headers = await signed_up(client)
    order = await client.post(
        "/api/orders",
        headers=headers,
        json={
            "cartId": "cart_x",
            "shippingAddress": "1 Main St, Boston",
            "paymentMethod": {"type": "card", "token": "pm_card_visa"},
        },
    )
    assert order.status_code == 422, order.text
    errors = order.json()["errors"]
    assert errors == [
        {
            "field": "shippingAddress",
            "in": "body",
            "message": "Input should be an object",
            "type": "model_attributes_type",
        }
    ]
