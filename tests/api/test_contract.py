"""The edge is strict and the OpenAPI document says what the API answers (issue 10 §7, §8).

The document as a whole is checked against the running API by schemathesis
(``tests/contract``); these tests pin the rules it is built from.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_REF, problem_responses
from core.errors import Conflict
from services.catalog.errors import ProductNotFound
from tests.factories import signed_up, stocked_product, unique_slug

ADDRESS = {
    "name": "Ada",
    "street": "1 Main St",
    "city": "Boston",
    "state": "MA",
    "zip": "02101",
    "country": "US",
}


def _code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["code"])


async def test_wrong_types_are_refused_not_coerced(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await stocked_product(client, staff, price=1000, stock=5)
    user, headers = await signed_up(client)
    refused = [
        await client.post(
            f"/api/inventory/{product['id']}/adjust",
            headers=staff,
            json={"delta": False, "reason": "count"},
        ),
        await client.post("/api/coupons/validate", json={"code": "X", "subtotal": False}),
        await client.post(
            f"/api/users/{user['id']}/addresses",
            headers=headers,
            json=ADDRESS | {"isDefaultBilling": 0},
        ),
        await client.get("/api/admin/orders", headers=staff, params={"to": "0.5"}),
        await client.get("/api/admin/orders", headers=staff, params={"from": "1700000000"}),
        await client.post("/api/cart/items", json={"productId": product["id"], "quantity": "2"}),
        await client.patch(f"/api/products/{product['id']}", headers=staff, json={"price": 9.0}),
    ]
    for response in refused:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert _code(response) == "validation_error"
    stock = await client.get(f"/api/inventory/{product['id']}", headers=staff)
    assert stock.json()["onHand"] == 5


async def test_values_of_the_right_type_still_pass(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await stocked_product(client, staff, price=1000, stock=5)
    user, headers = await signed_up(client)
    adjusted = await client.post(
        f"/api/inventory/{product['id']}/adjust", headers=staff, json={"delta": 2, "reason": "x"}
    )
    assert adjusted.json()["onHand"] == 7
    address = await client.post(
        f"/api/users/{user['id']}/addresses",
        headers=headers,
        json=ADDRESS | {"isDefaultBilling": True},
    )
    assert address.status_code == 201, address.text
    window = {"from": "2020-01-01T00:00:00Z", "to": "2999-01-01T00:00:00+00:00"}
    orders = await client.get("/api/admin/orders", headers=staff, params=window)
    assert orders.status_code == 200, orders.text
    coupon = await client.post(
        "/api/coupons",
        headers=staff,
        json={
            "code": unique_slug("C"),
            "kind": "fixed",
            "amount": 100,
            "expiresAt": "2999-01-01T00:00:00Z",
        },
    )
    assert coupon.status_code == 201, coupon.text


async def test_product_not_found_is_404_everywhere(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    missing = "prod_01JD3K7Q8MXYZXYZXYZXYZXYZX"
    answers = [
        await client.post(
            "/api/discounts",
            headers=staff,
            json={
                "name": "Gone",
                "kind": "fixed",
                "amount": 100,
                "productId": missing,
                "startsAt": "2025-01-01T00:00:00Z",
            },
        ),
        await client.post("/api/cart/items", json={"productId": missing, "quantity": 1}),
        await client.get(f"/api/inventory/{missing}", headers=staff),
        await client.get(f"/api/products/{missing}"),
    ]
    for response in answers:
        assert response.status_code == 404, response.text
        assert _code(response) == "product_not_found"


def test_problem_responses_come_from_the_error_classes() -> None:
    responses = problem_responses(ProductNotFound, (Conflict, "slug_taken"), (Conflict, "x"))
    assert sorted(responses) == [404, 409]
    schema = responses[409]["content"][PROBLEM_MEDIA_TYPE]["schema"]
    assert schema["allOf"][0] == {"$ref": PROBLEM_REF}
    assert schema["allOf"][1]["properties"]["code"]["enum"] == ["slug_taken", "x"]
    assert list(responses[404]["content"]) == [PROBLEM_MEDIA_TYPE]


def _codes(operation: dict[str, Any], status: str) -> list[str]:
    content = operation["responses"][status]["content"]
    assert list(content) == [PROBLEM_MEDIA_TYPE], (status, content)
    codes: list[str] = content[PROBLEM_MEDIA_TYPE]["schema"]["allOf"][1]["properties"]["code"][
        "enum"
    ]
    return codes


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


async def test_every_error_is_declared_as_problem_json(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "Problem" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in operation["responses"]:
                if int(status) >= 400:
                    assert _codes(operation, status), (method, path, status)
            # A NUL character in the query is refused everywhere (api/guards.py).
            assert "validation_error" in _codes(operation, "422"), (method, path)
            if "requestBody" in operation:
                assert _codes(operation, "413") == ["payload_too_large"], (method, path)
    # A model's body sent as text/plain (api/errors.py); not the webhooks, which read
    # their raw bytes.
    users = document["paths"]["/api/users"]["post"]
    assert _codes(users, "415") == ["unsupported_media_type"]
    easypost = document["paths"]["/api/shipping/webhooks/easypost"]["post"]
    assert "415" not in easypost["responses"]


async def test_a_nul_in_the_query_of_an_operation_without_parameters_is_declared(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    response = await client.get("/api/categories", params={"x": "a\x00b"})
    assert response.status_code == 422, response.text
    assert "parameters" not in document["paths"]["/api/categories"]["get"]
    assert _code(response) == "validation_error"
    # ``x`` itself is no parameter of it (api/query_parameters.py), once the NUL is gone.
    assert _codes(document["paths"]["/api/categories"]["get"], "422") == [
        "unknown_parameter",
        "validation_error",
    ]


async def test_kinds_of_operations_declare_what_they_share(document: dict[str, Any]) -> None:
    paths = document["paths"]
    adjust = paths["/api/inventory/{product_id}/adjust"]["post"]
    assert {"unauthenticated", "token_expired", "token_revoked"} <= set(_codes(adjust, "401"))
    assert _codes(adjust, "403") == ["staff_only"]
    assert _codes(adjust, "404") == ["product_not_found"]
    assert {"insufficient_stock", "idempotency_key_reused"} <= set(_codes(adjust, "409"))
    assert "idempotency_key_in_progress" in _codes(adjust, "409")
    assert adjust["responses"]["409"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert "bad_request" in _codes(adjust, "400")
    assert "Idempotency-Key" in [p["name"] for p in adjust["parameters"]]
    # The staff refund reads the header itself, but declares it once, as every creating POST.
    refund = paths["/api/admin/orders/{order_id}/refunds"]["post"]
    assert [p["name"] for p in refund["parameters"]].count("Idempotency-Key") == 1
    login = paths["/api/auth/login"]["post"]
    assert _codes(login, "429") == ["too_many_attempts"]
    assert "Idempotency-Key" not in [p["name"] for p in login.get("parameters", [])]
    # OptionalUser: the token may be left out; CurrentUser: it may not.
    assert paths["/api/products"]["get"]["security"] == [{"HTTPBearer": []}, {}]
    assert paths["/api/orders"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "cart_not_found" in _codes(paths["/api/cart"]["delete"], "404")
    assert "401" not in paths["/api/carts/shared/{share_token}"]["get"]["responses"]
