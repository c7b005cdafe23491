"""Carts: guest and signed-in, stock checks, totals and rounding, coupons, merge at login."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import create_session_factory
from models.analytics import AnalyticsEvent
from tests.factories import PASSWORD, bearer, register, signed_up, stocked_product, unique_slug


async def _product(
    client: httpx.AsyncClient, staff: dict[str, str], *, price: int, stock: int, **fields: Any
) -> dict[str, Any]:
    fields = {"name": "Cart Thing"} | fields
    return await stocked_product(client, staff, price=price, stock=stock, **fields)


async def test_a_guest_cart_lives_by_its_token(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await _product(client, staff, price=1000, stock=5)
    assert (await client.get("/api/cart")).status_code == 404
    added = await client.post("/api/cart/items", json={"productId": product["id"], "quantity": 2})
    assert added.status_code == 201, added.text
    cart = added.json()
    token = cart["cartToken"]
    assert token.startswith("ct_")
    assert [(i["productId"], i["quantity"]) for i in cart["items"]] == [(product["id"], 2)]
    headers = {"X-Cart-Token": token}
    again = await client.post(
        "/api/cart/items", headers=headers, json={"productId": product["id"], "quantity": 1}
    )
    assert again.json()["id"] == cart["id"]
    assert again.json()["items"][0]["quantity"] == 3
    patched = await client.patch(
        f"/api/cart/items/{product['id']}", headers=headers, json={"quantity": 1}
    )
    assert patched.json()["items"][0]["quantity"] == 1
    assert (await client.get("/api/cart", headers=headers)).json()["id"] == cart["id"]
    assert (
        await client.get("/api/cart", headers={"X-Cart-Token": "ct_someone_else"})
    ).status_code == 404
    removed = await client.delete(f"/api/cart/items/{product['id']}", headers=headers)
    assert removed.json()["items"] == []
    missing = await client.delete(f"/api/cart/items/{product['id']}", headers=headers)
    assert missing.status_code == 404


async def test_stock_and_product_checks(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    product = await _product(client, staff, price=500, stock=3)
    too_many = await client.post(
        "/api/cart/items", json={"productId": product["id"], "quantity": 4}
    )
    assert too_many.status_code == 409
    assert too_many.json()["code"] == "out_of_stock"
    assert too_many.json()["available"] == 3
    unknown = await client.post("/api/cart/items", json={"productId": "prod_nope", "quantity": 1})
    assert unknown.status_code == 404
    inactive = await _product(client, staff, price=500, stock=3, active=False)
    response = await client.post(
        "/api/cart/items", json={"productId": inactive["id"], "quantity": 1}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "product_inactive"
    bad = await client.post("/api/cart/items", json={"productId": product["id"], "quantity": 0})
    assert bad.status_code == 422
    # A guest cannot speak for a user (the seed's body as written, without a token).
    guest = await client.post(
        "/api/cart/items", json={"productId": product["id"], "quantity": 1, "userId": "user_456"}
    )
    assert (guest.status_code, guest.json()["code"]) == (401, "sign_in_required")
    # The same problem as POST /api/analytics/track's: one code, one title.
    assert guest.json()["title"] == "A userId needs that user's access token"
    user, headers = await signed_up(client)
    other = await client.post(
        "/api/cart/items",
        headers=headers,
        json={"productId": product["id"], "quantity": 1, "userId": "user_someone_else"},
    )
    assert (other.status_code, other.json()["code"]) == (403, "user_mismatch")
    own = await client.post(
        "/api/cart/items",
        headers=headers,
        json={"productId": product["id"], "quantity": 1, "userId": user["id"]},
    )
    assert own.status_code == 201
    assert own.json()["cartToken"] is None  # a signed-in user's cart needs no token


async def test_a_product_priced_in_another_currency_is_not_added(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """A cart is in one currency (USD): a product priced in yen is refused, not added at
    its number of yen read as cents (1500 yen charged as 15.00 USD)."""
    yen = await _product(client, staff, price=1500, stock=3, currency="JPY")
    refused = await client.post("/api/cart/items", json={"productId": yen["id"], "quantity": 1})
    assert (refused.status_code, refused.json()["code"]) == (422, "currency_mismatch")
    assert refused.json()["productCurrency"] == "JPY"
    assert refused.json()["cartCurrency"] == "USD"


async def test_totals_round_half_even_and_follow_current_prices(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await _product(client, staff, price=1999, stock=10)
    _, headers = await signed_up(client)
    cart = (
        await client.post(
            "/api/cart/items", headers=headers, json={"productId": product["id"], "quantity": 2}
        )
    ).json()
    # 3,998 of goods: under the 50.00 threshold, so 5.99 shipping; 6.25 % MA tax of
    # 3,998 is 249.875, which rounds half-even to 250.
    assert cart["totals"] == {
        "subtotal": 3998,
        "automaticDiscounts": 0,
        "couponDiscount": 0,
        "shipping": 599,
        "tax": 250,
        "total": 4847,
    }
    london = (await client.get("/api/cart", headers=headers, params={"country": "GB"})).json()
    assert london["totals"]["tax"] == 800  # 20 % of 3,998 = 799.6

    coupon = unique_slug("CART").upper()
    created = await client.post(
        "/api/coupons", headers=staff, json={"code": coupon, "kind": "percentage", "percent": "10"}
    )
    assert created.status_code == 201
    with_coupon = (
        await client.post("/api/cart/coupon", headers=headers, json={"code": coupon.lower()})
    ).json()
    # 10 % of 3,998 = 399.8 → 400 off; tax on 3,598 = 224.875 → 225.
    assert with_coupon["totals"] == {
        "subtotal": 3998,
        "automaticDiscounts": 0,
        "couponDiscount": 400,
        "shipping": 599,
        "tax": 225,
        "total": 4422,
    }
    assert with_coupon["couponCode"] == coupon

    await client.patch(f"/api/products/{product['id']}", headers=staff, json={"price": 2599})
    moved = (await client.get("/api/cart", headers=headers)).json()
    line = moved["items"][0]
    assert (line["unitPrice"], line["unitPriceAtAdd"], line["priceChanged"]) == (2599, 1999, True)
    # 5,198 of goods: over the threshold, so shipping is free, though the coupon takes
    # them to 5,198 - 520 = 4,678; tax 292.375 → 292.
    assert moved["totals"] == {
        "subtotal": 5198,
        "automaticDiscounts": 0,
        "couponDiscount": 520,
        "shipping": 0,
        "tax": 292,
        "total": 4970,
    }
    assert (await client.delete("/api/cart/coupon", headers=headers)).json()["couponCode"] is None


async def test_a_coupon_never_brings_shipping_back(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """Free shipping is judged on the goods at their sale prices, before the coupon: 55.00
    of goods ship free, with or without 10.00 off. Judged after the coupon, the cart at
    45.00 paid 5.99 of shipping, and 1.00 off made it dearer than no coupon at all."""
    product = await _product(client, staff, price=2750, stock=10)
    _, headers = await signed_up(client)
    await client.post(
        "/api/cart/items", headers=headers, json={"productId": product["id"], "quantity": 2}
    )
    before = (await client.get("/api/cart", headers=headers)).json()["totals"]
    # 5,500 of goods, free shipping; 6.25 % MA tax of 5,500 = 343.75 → 344.
    assert (before["shipping"], before["tax"], before["total"]) == (0, 344, 5844)
    totals = {}
    for off in (1000, 100):
        code = unique_slug("OFF").upper()
        created = await client.post(
            "/api/coupons", headers=staff, json={"code": code, "kind": "fixed", "amount": off}
        )
        assert created.status_code == 201, created.text
        applied = await client.post("/api/cart/coupon", headers=headers, json={"code": code})
        assert applied.status_code == 200, applied.text
        totals[off] = applied.json()["totals"]
    # 4,500 after 10.00 off: tax 281.25 → 281, and still no shipping.
    assert totals[1000] == {
        "subtotal": 5500,
        "automaticDiscounts": 0,
        "couponDiscount": 1000,
        "shipping": 0,
        "tax": 281,
        "total": 4781,
    }
    # 1.00 off: 5,400 and tax 337.5 → 338; less than without the coupon.
    assert (totals[100]["shipping"], totals[100]["total"]) == (0, 5738)
    assert totals[100]["total"] < before["total"]


async def test_a_coupon_that_does_not_apply_is_refused_with_its_reason(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    product = await _product(client, staff, price=1000, stock=5)
    _, headers = await signed_up(client)
    await client.post("/api/cart/items", headers=headers, json={"productId": product["id"]})
    code = unique_slug("MIN").upper()
    await client.post(
        "/api/coupons",
        headers=staff,
        json={"code": code, "kind": "fixed", "amount": 500, "minSubtotal": 10_000},
    )
    response = await client.post("/api/cart/coupon", headers=headers, json={"code": code})
    assert response.status_code == 422
    assert response.json()["code"] == "coupon_not_applicable"
    assert response.json()["reason"] == "coupon_below_minimum"


async def test_login_merges_the_guest_cart(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    scarce = await _product(client, staff, price=700, stock=4)
    other = await _product(client, staff, price=300, stock=9)
    user = await register(client)
    tokens = await login_with_cart(client, user["email"], None)
    await client.post(
        "/api/cart/items", headers=bearer(tokens), json={"productId": scarce["id"], "quantity": 2}
    )
    guest = (
        await client.post("/api/cart/items", json={"productId": scarce["id"], "quantity": 3})
    ).json()
    token = guest["cartToken"]
    await client.post(
        "/api/cart/items",
        headers={"X-Cart-Token": token},
        json={"productId": other["id"], "quantity": 1},
    )
    merged_tokens = await login_with_cart(client, user["email"], token)
    cart = (await client.get("/api/cart", headers=bearer(merged_tokens))).json()
    quantities = {i["productId"]: i["quantity"] for i in cart["items"]}
    # 2 + 3 would be 5, but only 4 are in stock.
    assert quantities == {scarce["id"]: 4, other["id"]: 1}
    assert (await client.get("/api/cart", headers={"X-Cart-Token": token})).status_code == 404


async def login_with_cart(
    client: httpx.AsyncClient, email: str, token: str | None
) -> dict[str, Any]:
    headers = {"X-Cart-Token": token} if token else {}
    response = await client.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_adding_to_a_cart_is_recorded(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    product = await _product(client, staff, price=100, stock=2)
    user, headers = await signed_up(client)
    await client.post("/api/cart/items", headers=headers, json={"productId": product["id"]})
    async with create_session_factory(engine)() as session:
        events = (
            await session.exec(
                select(AnalyticsEvent).where(
                    AnalyticsEvent.user_id == user["id"], AnalyticsEvent.event == "add_to_cart"
                )
            )
        ).all()
    assert [e.properties["productId"] for e in events] == [product["id"]]


@pytest.mark.parametrize("quantity", [100, 10_001])
async def test_the_per_line_maximum(
    client: httpx.AsyncClient, staff: dict[str, str], quantity: int
) -> None:
    product = await _product(client, staff, price=100, stock=20_000)
    response = await client.post(
        "/api/cart/items", json={"productId": product["id"], "quantity": quantity}
    )
    assert response.status_code == 422


async def test_share_links_view_copy_and_revoke(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    lamp = await _product(client, staff, price=1200, stock=10)
    owner, owner_headers = await signed_up(client, name="Owner Person")
    await client.post(
        "/api/cart/items", headers=owner_headers, json={"productId": lamp["id"], "quantity": 2}
    )
    shared = await client.post("/api/cart/share", headers=owner_headers, json={})
    assert shared.status_code == 201
    link = shared.json()
    assert link["url"].endswith(f"/api/carts/shared/{link['token']}")
    assert link["canEdit"] is False

    view = await client.get(f"/api/carts/shared/{link['token']}")
    assert view.status_code == 200
    body = view.json()
    assert [(i["productId"], i["quantity"]) for i in body["items"]] == [(lamp["id"], 2)]
    # No personal data in the shared view.
    for secret in (owner["id"], owner["email"], "Owner Person"):
        assert secret not in view.text

    copied = await client.post(f"/api/carts/shared/{link['token']}/copy")
    assert copied.status_code == 200
    guest = copied.json()
    assert guest["id"] != body.get("id")
    assert guest["cartToken"]
    assert [(i["productId"], i["quantity"]) for i in guest["items"]] == [(lamp["id"], 2)]

    # Read-only link: nobody can add through it.
    _, friend = await signed_up(client)
    refused = await client.post(
        f"/api/carts/shared/{link['token']}/items", headers=friend, json={"productId": lamp["id"]}
    )
    assert refused.status_code == 403

    revoked = await client.delete(f"/api/cart/share/{link['id']}", headers=owner_headers)
    assert revoked.status_code == 204
    assert (await client.get(f"/api/carts/shared/{link['token']}")).status_code == 404
    assert (await client.post(f"/api/carts/shared/{link['token']}/copy")).status_code == 404
    again = await client.delete(f"/api/cart/share/{link['id']}", headers=owner_headers)
    assert again.status_code == 404


async def test_an_editable_share_lets_a_household_fill_one_cart(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    milk = await _product(client, staff, price=150, stock=10)
    _, owner = await signed_up(client)
    await client.post("/api/cart/items", headers=owner, json={"productId": milk["id"]})
    link = (await client.post("/api/cart/share", headers=owner, json={"canEdit": True})).json()
    assert link["canEdit"] is True
    anonymous = await client.post(
        f"/api/carts/shared/{link['token']}/items", json={"productId": milk["id"]}
    )
    assert anonymous.status_code == 401
    _, partner = await signed_up(client)
    added = await client.post(
        f"/api/carts/shared/{link['token']}/items",
        headers=partner,
        json={"productId": milk["id"], "quantity": 2},
    )
    assert added.status_code == 200, added.text
    mine = (await client.get("/api/cart", headers=owner)).json()
    assert mine["items"][0]["quantity"] == 3
