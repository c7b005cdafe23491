"""What a person types is refused with control characters or bidirectional overrides in
it (models.base.SingleLineText, MultilineText)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from models.base import CONTROL_CHARACTER
from models.carts import CouponApply
from models.catalog import CategoryCreate, ProductCreate, ProductUpdate, ReviewCreate
from models.fulfillment_api import FulfillmentCancel, FulfillmentHold
from models.inventory import StockAdjustment
from models.orders import OrderCancel, RefundCreate, ShippingAddressIn
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
