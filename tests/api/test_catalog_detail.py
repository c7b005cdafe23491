"""Product detail read in one statement (``services.catalog.detail``) and a guest's read
taken before FastAPI's request handling (``api.routes.catalog_detail``): the bytes are
the ORM read's, rendered as before, through every way a detail is answered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory
from services.catalog.pricing import price_book
from services.catalog.products import ProductService
from services.catalog.rendering import to_wire
from services.inventory import StockRepository
from tests.factories import signed_up, unique_slug


async def _created(
    client: httpx.AsyncClient, staff: dict[str, str], path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, headers=staff, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def products(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    """Products with what a detail shows: images, attributes, a compare-at price,
    discounts of their own and of an ancestor category, reviews, stock; and some that
    are not listed."""
    root = await _created(
        client, staff, "/api/categories", {"name": "Home", "slug": unique_slug("home")}
    )
    lamps = await _created(
        client,
        staff,
        "/api/categories",
        {"name": "Lamps", "slug": unique_slug("lamps"), "parentId": root["id"]},
    )

    async def product(**fields: Any) -> dict[str, Any]:
        body = {"sku": unique_slug("sku"), "name": "Thing", "price": 1000} | fields
        return await _created(client, staff, "/api/products", body)

    found = {
        "rich": await product(
            name="Brass Reading Lamp",
            description="Dimmable — warm light, «soft» glow.\nTwo lines.",
            price=12_999,
            compareAtPrice=15_000,
            categoryId=lamps["id"],
            images=["https://img.example/lamp/1.jpg", "https://img.example/lamp/2.jpg"],
            attributes={"colour": "brass", "watts": 9, "dims": {"h": 40.5}, "tags": ["a"]},
            lowStockThreshold=3,
            autoReorder=True,
            reorderQuantity=12,
        ),
        "own_discount": await product(name="Desk Lamp", price=4_999, categoryId=lamps["id"]),
        "plain": await product(name="Plain Thing", price=0),
        "inactive": await product(name="Hidden Lamp", active=False),
        "deleted": await product(name="Gone Lamp"),
    }
    starts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for discount in (
        {"kind": "percentage", "percent": "12.5", "categoryId": root["id"]},
        {"kind": "fixed", "amount": 1_100, "productId": found["own_discount"]["id"]},
    ):
        await _created(
            client, staff, "/api/discounts", {"name": "Sale", "startsAt": starts} | discount
        )
    for rating in (5, 4, 4):  # an average of 4.33
        _, reviewer = await signed_up(client)
        review = await client.post(
            f"/api/products/{found['rich']['id']}/reviews",
            headers=reviewer,
            json={"rating": rating, "title": "Fine", "body": "Honest words."},
        )
        assert review.status_code == 201, review.text
    for key, units in (("rich", 7), ("own_discount", 2)):
        stocked = await client.post(
            f"/api/inventory/{found[key]['id']}/adjust",
            headers=staff,
            json={"delta": units, "reason": "delivery"},
        )
        assert stocked.status_code == 200, stocked.text
    gone = await client.delete(f"/api/products/{found['deleted']['id']}", headers=staff)
    assert gone.status_code == 204
    return found


async def _as_before(engine: AsyncEngine, key: str) -> bytes:
    """What the detail read sent before: the product through the ORM, priced by a price
    book read now, its stock read alone, rendered by ``to_wire`` and orjson."""
    async with create_session_factory(engine)() as session:
        product = await ProductService(session).get(key)
        [available] = (await StockRepository(session).available([product.id])).values()
        return orjson.dumps(to_wire(product, await price_book(session), available))


async def test_a_detail_is_the_bytes_the_orm_read_gave_whichever_way_it_is_answered(
    client: httpx.AsyncClient,
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    engine: AsyncEngine,
    products: dict[str, Any],
) -> None:
    _, signed_in = await signed_up(client)
    fresh = await make_client()  # another process: reads each product the first time
    for name in ("rich", "own_discount", "plain"):
        product = products[name]
        for key in (product["id"], product["slug"]):
            expected = await _as_before(engine, key)
            path = f"/api/products/{key}"
            first_guest = await client.get(path)  # one statement, before FastAPI's handling
            again = await client.get(path)  # the kept answer
            signed = await client.get(path, headers=signed_in)  # FastAPI, the process's copy
            first_signed = await fresh.get(path, headers=signed_in)  # FastAPI, one statement
            for response in (first_guest, again, signed, first_signed):
                assert response.status_code == 200, response.text
                assert response.headers["content-type"] == "application/json"
                assert response.content == expected, (name, key)
    rich = orjson.loads(await _as_before(engine, products["rich"]["id"]))
    # What the fixture set up shows: the larger discount (12.5% of 129.99 over nothing),
    # the reviews' summary, the stock.
    assert (rich["effectivePrice"], rich["available"]) == (12_999 - 1_625, 7)
    assert rich["rating"] == {
        "average": 4.33,
        "count": 3,
        "histogram": {"1": 0, "2": 0, "3": 0, "4": 2, "5": 1},
    }
    own = orjson.loads(await _as_before(engine, products["own_discount"]["id"]))
    assert (own["effectivePrice"], own["available"]) == (4_999 - 1_100, 2)


async def test_an_unlisted_product_is_the_same_404_for_a_guest_and_a_caller(
    client: httpx.AsyncClient, products: dict[str, Any]
) -> None:
    _, signed_in = await signed_up(client)
    keys = [
        products["inactive"]["id"],
        products["inactive"]["slug"],
        products["deleted"]["id"],
        "prod_does_not_exist",
        "no-such-slug",
    ]
    for key in keys:
        path = f"/api/products/{key}"
        answers = [await client.get(path), await client.get(path, headers=signed_in)]
        bodies = []
        for response in answers:
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert body["requestId"] == response.headers["x-request-id"]
            bodies.append({k: v for k, v in body.items() if k not in {"requestId", "traceId"}})
        assert (
            bodies[0]
            == bodies[1]
            == {
                "type": "urn:shopweave:problem:product_not_found",
                "title": bodies[0]["title"],
                "status": 404,
                "detail": f"no product {key}",
                "code": "product_not_found",
                "instance": path,
            }
        )
