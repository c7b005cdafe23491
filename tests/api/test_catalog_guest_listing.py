"""A guest's first listing or search read from its query string before FastAPI
(``CatalogRoute``, ``guest_listing_query``): the same bytes as the route's full read, and
every query it does not take plainly (bad input among them) left to that read and its
problem+json."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

import api.routes.catalog as catalog_routes
from api.routes.catalog_query import guest_listing_query
from api.state import AppState
from services.catalog.answers import Answers
from services.catalog.product_query import SEARCH_MAX_LENGTH, ProductQuery, ProductSort
from tests.factories import stocked_product, unique_slug


@pytest.fixture
async def lamps(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    """Three lamps in a category of their own, two in stock."""
    category = await client.post(
        "/api/categories", headers=staff, json={"name": "Lamps", "slug": unique_slug("lamps")}
    )
    assert category.status_code == 201, category.text
    category_id = category.json()["id"]
    for name, price, stock in (
        ("Brass Desk Lamp", 4500, 3),
        ("Brass Floor Lamp", 12000, 0),
        ("Paper Lamp Shade", 1500, 7),
    ):
        await stocked_product(
            client,
            staff,
            name=name,
            price=price,
            stock=stock,
            categoryId=category_id,
            description="A lamp with a warm light.",
            images=["https://img.test/lamp.jpg"],
            attributes={"finish": "brass"},
        )
    return {"category": category_id}


def _lean_reads(monkeypatch: pytest.MonkeyPatch) -> list[ProductQuery | None]:
    """What ``guest_listing_query`` answers from now on, call by call."""
    seen: list[ProductQuery | None] = []

    def recorded(query_string: bytes) -> ProductQuery | None:
        query = guest_listing_query(query_string)
        seen.append(query)
        return query

    monkeypatch.setattr(catalog_routes, "guest_listing_query", recorded)
    return seen


async def test_a_first_guest_read_before_fastapi_is_the_full_reads_bytes(
    app: FastAPI, client: httpx.AsyncClient, lamps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    state: AppState = app.state.shop
    category = lamps["category"]
    queries: list[dict[str, Any]] = [
        {"search": "lamp", "category": category},
        {"search": "brass lamp", "category": category, "page": 1, "limit": 2},
        {"search": "lamp", "category": category, "page": 2, "limit": 2},
        {"search": "  Lamp  ", "category": category, "sort": "price_desc"},
        {"search": "lamp", "category": category, "minPrice": 2000, "maxPrice": 20000},
        {"search": "lamp", "category": category, "inStock": "true", "sort": "newest"},
        {"search": "lamp", "category": category, "inStock": "false"},
        {"search": "nothing like it", "category": category},
        # Listings, filtered and sorted as a shop's category pages ask for them.
        {"category": category},
        {"category": category, "sort": "price_asc", "limit": 2},
        {"category": category, "sort": "price_desc", "page": 2, "limit": 2},
        {"category": category, "minPrice": 2000, "maxPrice": 20000, "sort": "rating"},
        {"category": category, "inStock": "true"},
        {"category": category, "inStock": "false", "sort": "newest"},
        {"category": category, "search": " "},  # no words: a listing
    ]
    for params in queries:
        target = f"/api/products?{urlencode(params)}"
        # The full read: FastAPI validates, the route answers.
        state.answers = Answers()
        monkeypatch.setattr(catalog_routes, "guest_listing_query", lambda _: None)
        full = await client.get(target)
        # The lean read, with nothing kept to answer it from.
        state.answers = Answers()
        seen = _lean_reads(monkeypatch)
        lean = await client.get(target)
        assert len(seen) == 1, params
        assert seen[0] is not None, params  # it was read before FastAPI
        assert lean.status_code == full.status_code == 200, lean.text
        assert lean.content == full.content, params
        assert lean.headers["content-type"] == full.headers["content-type"]
    shown = (await client.get(f"/api/products?{urlencode(queries[0])}")).json()
    assert shown["total"] == 3  # the comparison was of pages with products in them


BAD_INPUT: list[tuple[str, int, str]] = [
    ("search=lamp&page=0", 422, "validation_error"),
    ("search=lamp&page=10001", 422, "validation_error"),
    ("search=lamp&page=two", 422, "validation_error"),
    ("search=lamp&limit=101", 422, "validation_error"),
    ("search=lamp&limit=", 422, "validation_error"),
    ("search=lamp&sort=cheapest", 422, "validation_error"),
    ("search=lamp&inStock=maybe", 422, "validation_error"),
    ("search=lamp&minPrice=-1", 422, "validation_error"),
    ("search=lamp&maxPrice=2147483648", 422, "validation_error"),
    ("search=lamp&minPrice=500&maxPrice=100", 422, "invalid_price_range"),
    (f"search={'a' * (SEARCH_MAX_LENGTH + 1)}", 422, "validation_error"),
    (f"search=lamp&category={'c' * 121}", 422, "validation_error"),
    # Read by pydantic's lax mode, refused by the full read (api/query_parameters.py).
    ("search=lamp&page=01", 422, "validation_error"),
    ("search=lamp&limit=1_0", 422, "validation_error"),
    ("search=lamp&limit=%2B5", 422, "validation_error"),
    ("search=lamp&limit=5%20", 422, "validation_error"),
    ("search=lamp&inStock=yes", 422, "validation_error"),
    ("search=lamp&inStock=1", 422, "validation_error"),
    ("search=lamp&inStock=True", 422, "validation_error"),
    ("search=lamp&inStock=off", 422, "validation_error"),
    ("search=lamp&page=1&page=2", 422, "repeated_parameter"),  # Starlette kept the last
    ("search=lamp&limit=20&limit=20", 422, "repeated_parameter"),
    ("search=lamp&utm_source=mail", 422, "unknown_parameter"),  # FastAPI ignored it
    ("search=lamp&categry=lamps", 422, "unknown_parameter"),
    ("search=lamp&_=1733580000000", 422, "unknown_parameter"),  # a cache-buster
]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    # Each as a search, and as a listing where it has more than the search.
    BAD_INPUT
    + [
        (query.removeprefix("search=lamp&"), status, code)
        for query, status, code in BAD_INPUT
        if query.startswith("search=lamp&")
    ],
)
async def test_bad_input_gets_the_full_reads_problem(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, query: str, status: int, code: str
) -> None:
    seen = _lean_reads(monkeypatch)
    response = await client.get(f"/api/products?{query}")
    assert seen == [None]  # left to FastAPI
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("query", "read"),
    [
        ("search=+&page=1", ProductQuery()),  # no words: a listing
        ("page=2", ProductQuery(page=2)),
        ("", ProductQuery()),
    ],
)
async def test_a_guests_listing_is_read_before_fastapi_and_answered(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, query: str, read: ProductQuery
) -> None:
    seen = _lean_reads(monkeypatch)
    response = await client.get(f"/api/products?{query}")
    assert seen == [read]
    assert response.status_code == 200, response.text


def test_guest_listing_query_reads_what_the_route_would() -> None:
    query = guest_listing_query(
        b"search=Brass%20%20lamp&category=lamps&minPrice=0&maxPrice=9000"
        b"&inStock=false&sort=rating&page=3&limit=100"
    )
    assert query == ProductQuery(
        category="lamps",
        min_price=0,
        max_price=9000,
        search="Brass lamp",
        in_stock=False,
        sort=ProductSort.RATING,
        page=3,
        limit=100,
    )
    assert guest_listing_query(b"search=lamp") == ProductQuery(search="lamp")
    assert guest_listing_query(b"category=lamps&sort=price_asc") == ProductQuery(
        category="lamps", sort=ProductSort.PRICE_ASC
    )
    assert guest_listing_query(b"minPrice=500&maxPrice=100") is None  # the route's 422
    assert guest_listing_query(b"search=lamp&limit=20&limit=20") is None
    for written in (b"yes", b"1", b"True", b"on"):  # lax spellings: the full read refuses
        assert guest_listing_query(b"search=lamp&inStock=" + written) is None
