"""NUL characters and oversized bodies are refused before any endpoint runs (issue 11)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.factories import PASSWORD, register, unique_email

NUL = "\u0000"


def refused_nul(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_error"
    assert "NUL" in body["detail"]
    assert body["errors"][0]["type"] == "nul_character"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/products?search=head%00phones", None),
        ("GET", "/api/products/wire%00less", None),
        ("GET", "/api/products?category=aud%00io", None),
        ("POST", "/api/users", {"email": "x@example.com", "password": PASSWORD, "name": "a\0b"}),
        ("POST", "/api/auth/login", {"email": "a\0b@example.com", "password": PASSWORD}),
        ("POST", "/api/coupons/validate", {"code": "WEL\0COME", "subtotal": 1000}),
        ("POST", "/api/cart/coupon", {"code": "WEL\0COME"}),
    ],
)
async def test_the_reported_nul_inputs_answer_422(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    refused_nul(await client.request(method, path, json=body))


async def test_text_that_only_looks_like_a_nul_is_accepted(client: httpx.AsyncClient) -> None:
    """An escaped backslash before u0000, and %00 inside JSON, are plain text."""
    user = await register(client, name="back\\u0000slash 100%00")
    assert user["name"] == "back\\u0000slash 100%00"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.fixture
async def staff_client(client: httpx.AsyncClient, staff: dict[str, str]) -> httpx.AsyncClient:
    client.headers.update(staff)
    return client


async def test_every_operation_refuses_nul_in_every_part(
    app: FastAPI, staff_client: httpx.AsyncClient
) -> None:
    """The sweep: every operation of the OpenAPI document, as staff, with a NUL in each
    path parameter, in a query parameter and in a JSON body. Never a 5xx; always 422."""
    operations = _operations(app.openapi())
    assert len(operations) > 40
    for method, template, operation in operations:
        params = [p for p in operation.get("parameters", []) if p["in"] in {"path", "query"}]
        real_path = re.sub(r"\{[^}]+\}", "x1", template)
        attempts: list[tuple[str, dict[str, Any] | None]] = (
            [(re.sub(r"\{[^}]+\}", "a%00b", template), None)] if "{" in template else []
        )
        name = next((p["name"] for p in params if p["in"] == "query"), "q")
        attempts.append((f"{real_path}?{name}=a%00b", None))
        if "requestBody" in operation:
            attempts.append((real_path, {"name": f"a{NUL}b", "code": NUL, "email": NUL}))
        for path, body in attempts:
            response = await staff_client.request(method, path, json=body)
            assert response.status_code < 500, f"{method} {path}: {response.text}"
            refused_nul(response)


async def test_a_body_over_the_limit_answers_413_unread(
    make_client: Any,
) -> None:
    client: httpx.AsyncClient = await make_client(max_body_bytes=4096)
    big = {"email": unique_email(), "password": PASSWORD, "name": "x" * 10_000}
    response = await client.post("/api/users", json=big)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["limit"] == 4096

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit is enforced on the bytes as they arrive.
        yield b'{"email": "a@example.com", "name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    streamed = await client.post(
        "/api/users", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text

    # Under the limit, the same endpoint works as usual.
    fine = await client.post(
        "/api/users", json={"email": unique_email(), "password": PASSWORD, "name": "Ada"}
    )
    assert fine.status_code == 201, fine.text


async def test_malformed_json_names_the_line_and_column(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users",
        content=b'{\n  "email": "a@example.com",,\n  "name": "Ada"\n}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["type"] == "json_invalid"
    assert body["detail"].startswith("the body is not valid JSON: ")
    assert "line 2, column 28" in body["detail"]
    assert (body["line"], body["column"]) == (2, 28)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
async def test_a_body_sent_as_another_type_than_json_answers_415(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """JSON sent without saying so (curl's -d says form-urlencoded; no Content-Type is
    not read as JSON either): the type is the mistake, not the fields, which FastAPI
    would report as "not a valid dictionary"."""
    email = unique_email()
    sent = f'{{"email": "{email}", "password": "{PASSWORD}", "name": "Ada"}}'
    response = await client.post("/api/users", content=sent, headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "unsupported_media_type"
    assert f"not {content_type or 'without a Content-Type'}" in body["detail"]
    assert "application/json" in body["detail"]
    # A +json type is JSON: the same body is taken.
    json_ld = await client.post(
        "/api/users", content=sent, headers={"Content-Type": "application/ld+json"}
    )
    assert json_ld.status_code == 201, json_ld.text


async def test_field_paths_read_alike_for_query_and_body(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """A query error names `status`, as a body error names `shippingAddress.city`; `in`
    tells where each came from."""
    query = await client.get("/api/admin/orders?status=nonsense", headers=staff)
    assert query.status_code == 422, query.text
    assert [(e["field"], e["in"]) for e in query.json()["errors"]] == [("status", "query")]
    body = await client.post("/api/users", json={"email": unique_email(), "name": "A"})
    assert [(e["field"], e["in"]) for e in body.json()["errors"]] == [("password", "body")]
