"""Reviews and rating aggregates, including under concurrent writes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.factories import signed_up, unique_slug


@pytest.fixture
async def product(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/api/products",
        headers=staff,
        json={"sku": unique_slug("rev"), "name": "Reviewed Lamp", "price": 2500},
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def _review(
    client: httpx.AsyncClient, product_id: str, headers: dict[str, str], rating: int
) -> httpx.Response:
    return await client.post(
        f"/api/products/{product_id}/reviews",
        headers=headers,
        json={"rating": rating, "title": f"{rating} stars", "body": "Honest words."},
    )


async def test_one_review_per_user_and_the_summary_follows(
    client: httpx.AsyncClient, product: dict[str, Any]
) -> None:
    user, headers = await signed_up(client)
    first = await _review(client, product["id"], headers, 4)
    assert first.status_code == 201, first.text
    review = first.json()
    assert review["userId"] == user["id"]
    assert review["verifiedPurchase"] is False  # no orders exist for this user
    again = await _review(client, product["id"], headers, 5)
    assert again.status_code == 409
    assert again.json()["code"] == "already_reviewed"
    _, other = await signed_up(client)
    assert (await _review(client, product["id"], other, 1)).status_code == 201
    rating = (await client.get(f"/api/products/{product['id']}")).json()["rating"]
    assert rating == {
        "average": 2.5,
        "count": 2,
        "histogram": {"1": 1, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    listed = (await client.get(f"/api/products/{product['id']}/reviews")).json()
    assert listed["total"] == 2


async def test_reviews_need_an_account_and_valid_fields(
    client: httpx.AsyncClient, product: dict[str, Any]
) -> None:
    anonymous = await client.post(
        f"/api/products/{product['id']}/reviews", json={"rating": 5, "title": "t", "body": "b"}
    )
    assert anonymous.status_code == 401
    _, headers = await signed_up(client)
    for body, field in [
        ({"rating": 0, "title": "t", "body": "b"}, "rating"),
        ({"rating": 6, "title": "t", "body": "b"}, "rating"),
        ({"rating": 3, "title": "", "body": "b"}, "title"),
        ({"rating": 3, "title": "t"}, "body"),
        # Blank once trimmed: stored as an empty title or body before.
        ({"rating": 3, "title": "   ", "body": "b"}, "title"),
        ({"rating": 3, "title": "t", "body": " \n\t "}, "body"),
    ]:
        response = await client.post(
            f"/api/products/{product['id']}/reviews", headers=headers, json=body
        )
        assert response.status_code == 422
        assert field in {e["field"] for e in response.json()["errors"]}
    listed = (await client.get(f"/api/products/{product['id']}/reviews")).json()
    assert listed["total"] == 0
    missing = await _review(client, "prod_missing", headers, 3)
    assert missing.status_code == 404


async def test_aggregates_stay_exact_under_concurrent_reviews(
    client: httpx.AsyncClient, product: dict[str, Any]
) -> None:
    reviewers = [await signed_up(client) for _ in range(12)]
    ratings = [(i % 5) + 1 for i in range(12)]
    responses = await asyncio.gather(
        *(
            _review(client, product["id"], headers, rating)
            for (_, headers), rating in zip(reviewers, ratings, strict=True)
        )
    )
    assert [r.status_code for r in responses] == [201] * 12
    # The same users racing a second review each: all refused, nothing counted twice.
    duplicates = await asyncio.gather(
        *(_review(client, product["id"], headers, 5) for _, headers in reviewers)
    )
    assert {r.status_code for r in duplicates} == {409}
    rating = (await client.get(f"/api/products/{product['id']}")).json()["rating"]
    assert rating["count"] == 12
    assert rating["average"] == round(sum(ratings) / 12, 2)
    assert rating["histogram"] == {str(n): ratings.count(n) for n in range(1, 6)}


async def test_staff_hide_reviews_and_the_summary_excludes_them(
    client: httpx.AsyncClient, product: dict[str, Any], staff: dict[str, str]
) -> None:
    _, a = await signed_up(client)
    _, b = await signed_up(client)
    bad = (await _review(client, product["id"], a, 1)).json()
    await _review(client, product["id"], b, 5)
    path = f"/api/products/{product['id']}/reviews/{bad['id']}"
    assert (await client.patch(path, headers=a, json={"hidden": True})).status_code == 403
    for _ in range(2):  # hiding twice counts once
        assert (await client.patch(path, headers=staff, json={"hidden": True})).status_code == 204
    rating = (await client.get(f"/api/products/{product['id']}")).json()["rating"]
    assert (rating["count"], rating["average"], rating["histogram"]["1"]) == (1, 5.0, 0)
    public = (await client.get(f"/api/products/{product['id']}/reviews")).json()
    assert [r["rating"] for r in public["items"]] == [5]
    moderated = (await client.get(f"/api/products/{product['id']}/reviews", headers=staff)).json()
    assert {r["rating"] for r in moderated["items"]} == {1, 5}
    assert (await client.patch(path, headers=staff, json={"hidden": False})).status_code == 204
    rating = (await client.get(f"/api/products/{product['id']}")).json()["rating"]
    assert (rating["count"], rating["average"]) == (2, 3.0)
    unknown = f"/api/products/{product['id']}/reviews/rev_missing"
    assert (await client.patch(unknown, headers=staff, json={"hidden": True})).status_code == 404


async def test_staff_moderate_the_reviews_of_a_product_off_sale(
    client: httpx.AsyncClient, product: dict[str, Any], staff: dict[str, str]
) -> None:
    """Staff may hide a review of a deactivated product, so they can list its reviews to
    find it; before, the list was 404 for them too. Customers still get 404."""
    _, shopper = await signed_up(client)
    spam = (await _review(client, product["id"], shopper, 1)).json()
    off = await client.patch(
        f"/api/products/{product['id']}", headers=staff, json={"active": False}
    )
    assert off.status_code == 200, off.text
    path = f"/api/products/{product['id']}/reviews"
    assert (await client.get(path)).status_code == 404
    assert (await client.get(path, headers=shopper)).status_code == 404
    listed = await client.get(path, headers=staff)
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["items"]] == [spam["id"]]
    hidden = await client.patch(f"{path}/{spam['id']}", headers=staff, json={"hidden": True})
    assert hidden.status_code == 204
