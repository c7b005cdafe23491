"""Discount windows, effective prices, coupon checks and coupon limits under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from core.errors import ShopError
from services.catalog.coupons import CouponService
from tests.factories import signed_up, unique_slug


def _iso(delta_seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_seconds)).isoformat()


async def _post(
    client: httpx.AsyncClient, path: str, staff: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, headers=staff, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _price(client: httpx.AsyncClient, product_id: str) -> int:
    response = await client.get(f"/api/products/{product_id}")
    assert response.status_code == 200
    value: int = response.json()["effectivePrice"]
    return value


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.2)


async def test_a_discount_window_opens_and_closes(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await _post(
        client, "/api/products", staff, {"sku": unique_slug("win"), "name": "Lamp", "price": 1000}
    )
    assert await _price(client, product["id"]) == 1000  # now cached
    opens = datetime.now(UTC) + timedelta(seconds=3)
    closes = opens + timedelta(seconds=3)
    await _post(
        client,
        "/api/discounts",
        staff,
        {
            "name": "Flash sale",
            "kind": "percentage",
            "percent": "25",
            "productId": product["id"],
            "startsAt": opens.isoformat(),
            "endsAt": closes.isoformat(),
        },
    )
    assert await _price(client, product["id"]) == 1000  # not open yet, and cached again
    await _sleep_until(opens)
    assert await _price(client, product["id"]) == 750  # opened: the cache did not outlive it
    listing = await client.get("/api/products", params={"search": product["name"], "limit": 100})
    assert {p["id"]: p["effectivePrice"] for p in listing.json()["items"]}[product["id"]] == 750
    await _sleep_until(closes)
    assert await _price(client, product["id"]) == 1000  # closed again


async def test_the_largest_discount_applies_and_categories_cover_their_subtree(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    root = await _post(
        client, "/api/categories", staff, {"name": "Home", "slug": unique_slug("home")}
    )
    leaf = await _post(
        client,
        "/api/categories",
        staff,
        {"name": "Lamps", "slug": unique_slug("lamps"), "parentId": root["id"]},
    )
    product = await _post(
        client,
        "/api/products",
        staff,
        {"sku": unique_slug("lamp"), "name": "Desk Lamp", "price": 999, "categoryId": leaf["id"]},
    )
    await _post(
        client,
        "/api/discounts",
        staff,
        {
            "name": "Home week",
            "kind": "percentage",
            "percent": "12.5",
            "categoryId": root["id"],
            "startsAt": _iso(-60),
        },
    )
    # 12.5 % of 999 is 124.875: half-even rounding takes 125 off.
    assert await _price(client, product["id"]) == 874
    await _post(
        client,
        "/api/discounts",
        staff,
        {
            "name": "Lamp deal",
            "kind": "fixed",
            "amount": 100,
            "productId": product["id"],
            "startsAt": _iso(-60),
        },
    )
    assert await _price(client, product["id"]) == 874  # 125 off beats 100 off; no stacking
    big = await _post(
        client,
        "/api/discounts",
        staff,
        {
            "name": "Free lamp",
            "kind": "fixed",
            "amount": 5000,
            "productId": product["id"],
            "startsAt": _iso(-60),
        },
    )
    assert await _price(client, product["id"]) == 0  # never below zero
    assert (await client.delete(f"/api/discounts/{big['id']}", headers=staff)).status_code == 204
    assert await _price(client, product["id"]) == 874


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "percentage", "percent": "0", "productId": "x"},
        {"kind": "percentage", "percent": "101", "productId": "x"},
        {"kind": "percentage", "amount": 5, "productId": "x"},
        {"kind": "fixed", "percent": "5", "productId": "x"},
        {"kind": "fixed", "amount": 5},
        {"kind": "fixed", "amount": 5, "productId": "x", "categoryId": "y"},
        {"kind": "fixed", "amount": 5, "productId": "x", "endsAt": "2020-01-01T00:00:00Z"},
    ],
)
async def test_bad_discounts_are_422(
    client: httpx.AsyncClient, staff: dict[str, str], body: dict[str, Any]
) -> None:
    full = {"name": "Bad", "startsAt": "2025-01-01T00:00:00Z"} | body
    response = await client.post("/api/discounts", headers=staff, json=full)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("field", ["productId", "categoryId"])
async def test_an_empty_target_id_is_a_validation_error(
    client: httpx.AsyncClient, staff: dict[str, str], field: str
) -> None:
    # It was taken as no id by the existence check, then refused by the foreign key: a 500.
    body = {"name": "Empty", "kind": "fixed", "amount": 5, "startsAt": "2025-01-01T00:00:00Z"}
    response = await client.post("/api/discounts", headers=staff, json=body | {field: ""})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [error["field"] for error in problem["errors"]] == [field]


async def _coupon(client: httpx.AsyncClient, staff: dict[str, str], **fields: Any) -> str:
    code = unique_slug("C").upper()
    body = {"code": code.lower(), "kind": "percentage", "percent": "10"} | fields
    created = await _post(client, "/api/coupons", staff, body)
    assert created["code"] == code
    return code


async def test_a_coupon_window_is_checked_and_its_times_are_utc(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    # An expiry before the start was taken: a coupon no one could ever use.
    backwards = {
        "code": unique_slug("BACK"),
        "kind": "percentage",
        "percent": "10",
        "startsAt": "2027-02-01T00:00:00Z",
        "expiresAt": "2027-01-01T00:00:00Z",
    }
    refused = await client.post("/api/coupons", headers=staff, json=backwards)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_error"
    # A time without an offset is UTC; the answer said it without its Z, unlike a read.
    naive = backwards | {"code": unique_slug("NAIVE"), "expiresAt": "2027-03-01T00:00:00"}
    created = await _post(client, "/api/coupons", staff, naive)
    assert created["expiresAt"] == "2027-03-01T00:00:00Z"
    read = await client.get(f"/api/coupons/{created['code']}", headers=staff)
    assert read.json() == created
    moved = await client.patch(
        f"/api/coupons/{created['code']}", headers=staff, json={"expiresAt": "2027-01-15T00:00Z"}
    )
    assert moved.status_code == 422, moved.text
    assert moved.json()["code"] == "validation_error"
    assert (await client.get(f"/api/coupons/{created['code']}", headers=staff)).json() == created


async def _check(client: httpx.AsyncClient, code: str, subtotal: int, **kw: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/coupons/validate",
        json={"code": code, "subtotal": subtotal} | kw.get("body", {}),
        headers=kw.get("headers", {}),
    )
    assert response.status_code == 200, response.text
    verdict: dict[str, Any] = response.json()
    return verdict


async def test_coupon_checks_say_why(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    ok = await _coupon(client, staff, minSubtotal=2000)
    assert await _check(client, ok.lower(), 2500) == {
        "valid": True,
        "code": ok,
        "discount": 250,
        "reason": None,
        "detail": None,
    }
    assert (await _check(client, ok, 1999))["reason"] == "coupon_below_minimum"
    assert (await _check(client, "NOPE-123", 5000))["reason"] == "coupon_not_found"
    expired = await _coupon(client, staff, expiresAt=_iso(-1))
    assert (await _check(client, expired, 5000))["reason"] == "coupon_expired"
    later = await _coupon(client, staff, startsAt=_iso(3600))
    assert (await _check(client, later, 5000))["reason"] == "coupon_not_started"
    euros = await _coupon(client, staff, kind="fixed", percent=None, amount=500, currency="EUR")
    assert (await _check(client, euros, 5000))["reason"] == "coupon_currency_mismatch"
    assert (await _check(client, euros, 5000, body={"currency": "EUR"}))["discount"] == 500
    # Only a currency a price can be in (ISO 4217, with minor units): not gold.
    gold = {"code": unique_slug("AU"), "kind": "fixed", "amount": 500, "currency": "XAU"}
    refused = await client.post("/api/coupons", headers=staff, json=gold)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_error"
    off = await _coupon(client, staff)
    assert (
        await client.patch(f"/api/coupons/{off}", headers=staff, json={"active": False})
    ).status_code == 200
    assert (await _check(client, off, 5000))["reason"] == "coupon_inactive"

    once = await _coupon(client, staff, usageLimit=1)
    user, headers = await signed_up(client)
    sessions = create_session_factory(engine)
    async with transaction(sessions) as session:
        await CouponService(session).redeem(
            once, user_id=user["id"], order_id="ord_check_1", subtotal=5000, currency="USD"
        )
    assert (await _check(client, once, 5000))["reason"] == "coupon_exhausted"
    mine = await _coupon(client, staff, perUserLimit=1)
    async with transaction(sessions) as session:
        await CouponService(session).redeem(
            mine, user_id=user["id"], order_id="ord_check_2", subtotal=5000, currency="USD"
        )
    assert (await _check(client, mine, 5000, headers=headers))[
        "reason"
    ] == "coupon_user_limit_reached"
    assert (await _check(client, mine, 5000))["valid"] is True  # another (anonymous) shopper


async def _redeem(engine: AsyncEngine, code: str, user_id: str, order_id: str) -> bool:
    try:
        async with transaction(create_session_factory(engine)) as session:
            await CouponService(session).redeem(
                code, user_id=user_id, order_id=order_id, subtotal=10_000, currency="USD"
            )
    except ShopError:
        return False
    return True


async def test_coupon_limits_hold_under_concurrent_use(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    total = await _coupon(client, staff, usageLimit=3)
    results = await asyncio.gather(
        *(_redeem(engine, total, f"user_{i}", f"ord_{total}_{i}") for i in range(12))
    )
    assert sum(results) == 3
    assert (await client.get(f"/api/coupons/{total}", headers=staff)).json()["usedCount"] == 3

    per_user = await _coupon(client, staff, perUserLimit=2)
    results = await asyncio.gather(
        *(_redeem(engine, per_user, "user_same", f"ord_{per_user}_{i}") for i in range(8))
    )
    assert sum(results) == 2


async def test_redemption_is_idempotent_per_order_and_can_be_released(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    code = await _coupon(client, staff, usageLimit=1)
    assert await _redeem(engine, code, "user_a", "ord_same")
    assert await _redeem(engine, code, "user_a", "ord_same")  # retried step: same redemption
    assert (await client.get(f"/api/coupons/{code}", headers=staff)).json()["usedCount"] == 1
    async with transaction(create_session_factory(engine)) as session:
        assert await CouponService(session).release("ord_same") is True
    async with transaction(create_session_factory(engine)) as session:
        assert await CouponService(session).release("ord_same") is False  # already undone
    assert (await client.get(f"/api/coupons/{code}", headers=staff)).json()["usedCount"] == 0
    assert await _redeem(engine, code, "user_b", "ord_other")


async def test_only_staff_manage_coupons_and_codes_are_unique(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    code = await _coupon(client, staff)
    again = await client.post(
        "/api/coupons",
        headers=staff,
        json={"code": code.lower(), "kind": "percentage", "percent": "5"},
    )
    assert again.status_code == 409
    _, customer = await signed_up(client)
    assert (await client.get("/api/coupons", headers=customer)).status_code == 403
    response = await client.post(
        "/api/coupons",
        headers=customer,
        json={"code": "MINE", "kind": "percentage", "percent": "99"},
    )
    assert response.status_code == 403


async def _every_page(
    client: httpx.AsyncClient, path: str, staff: dict[str, str]
) -> list[dict[str, Any]]:
    """Every item of a paginated list, page by page, each page checked against the
    contract (``items``, ``total``, ``page``, ``limit``)."""
    items: list[dict[str, Any]] = []
    number = 1
    while True:
        response = await client.get(path, headers=staff, params={"page": number, "limit": 100})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "total", "page", "limit"}
        assert (body["page"], body["limit"]) == (number, 100)
        items += body["items"]
        if len(items) >= body["total"] or not body["items"]:
            assert len(items) == body["total"]
            return items
        number += 1


async def test_coupons_and_discounts_are_listed_a_page_at_a_time(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    # They answered the whole table as a bare array, where every other list of the API
    # (ARCHITECTURE §4) answers a page: items, total, page and limit.
    first, second = await _coupon(client, staff), await _coupon(client, staff)
    newest = await client.get("/api/coupons", headers=staff, params={"limit": 1})
    assert newest.status_code == 200, newest.text
    body = newest.json()
    assert [c["code"] for c in body["items"]] == [second]
    assert (body["page"], body["limit"]) == (1, 1)
    assert body["total"] >= 2
    after = await client.get("/api/coupons", headers=staff, params={"page": 2, "limit": 1})
    assert [c["code"] for c in after.json()["items"]] == [first]
    assert first in {c["code"] for c in await _every_page(client, "/api/coupons", staff)}

    product = await _post(
        client, "/api/products", staff, {"sku": unique_slug("pg"), "name": "Mug", "price": 800}
    )
    made = {
        (
            await _post(
                client,
                "/api/discounts",
                staff,
                {
                    "name": name,
                    "kind": "fixed",
                    "amount": 50,
                    "productId": product["id"],
                    "startsAt": _iso(-60),
                },
            )
        )["id"]
        for name in ("Mug deal", "Mug deal too")
    }
    assert made <= {d["id"] for d in await _every_page(client, "/api/discounts", staff)}
    for path in ("/api/coupons", "/api/discounts"):
        too_many = await client.get(path, headers=staff, params={"limit": 101})
        assert too_many.status_code == 422
        assert too_many.json()["code"] == "validation_error"


async def test_coupon_updates_are_checked(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    code = unique_slug("UPD").upper()
    await client.post(
        "/api/coupons", headers=staff, json={"code": code, "kind": "percentage", "percent": "5"}
    )
    for i in range(2):
        async with transaction(create_session_factory(engine)) as session:
            await CouponService(session).redeem(
                code, user_id=f"user_{i}", order_id=f"ord_{code}_{i}", subtotal=1000, currency="USD"
            )
    below = await client.patch(f"/api/coupons/{code}", headers=staff, json={"usageLimit": 1})
    assert below.status_code == 409
    assert below.json()["code"] == "usage_limit_below_use"
    null = await client.patch(f"/api/coupons/{code}", headers=staff, json={"active": None})
    assert null.status_code == 422


async def test_concurrent_releases_give_a_coupon_use_back_once(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    code = unique_slug("REL").upper()
    await client.post(
        "/api/coupons", headers=staff, json={"code": code, "kind": "percentage", "percent": "5"}
    )
    sessions = create_session_factory(engine)
    async with transaction(sessions) as session:
        await CouponService(session).redeem(
            code, user_id="user_r", order_id=f"ord_{code}", subtotal=1000, currency="USD"
        )

    async def release() -> bool:
        async with transaction(sessions) as session:
            return await CouponService(session).release(f"ord_{code}")

    assert sorted(await asyncio.gather(*(release() for _ in range(5)))) == [False] * 4 + [True]
    assert (await client.get(f"/api/coupons/{code}", headers=staff)).json()["usedCount"] == 0
