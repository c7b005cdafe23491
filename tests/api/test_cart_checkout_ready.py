"""The cart view shows what checkout would refuse in it, line by line and as a whole."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import signed_up, stocked_product


def _lines(cart: dict[str, Any]) -> dict[str, str | None]:
    return {line["productId"]: line["problem"] for line in cart["items"]}


def _verdict(cart: dict[str, Any]) -> tuple[bool, str | None]:
    return cart["checkoutReady"], cart["checkoutProblem"]


async def test_a_product_taken_off_sale_after_it_was_carted_is_flagged(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """Checkout refuses it (`product_inactive`); the cart showed nothing of it before."""
    kept = await stocked_product(client, staff, price=3000, stock=5)
    dropped = await stocked_product(client, staff, price=2500, stock=5)
    _, headers = await signed_up(client)
    for product in (kept, dropped):
        added = await client.post(
            "/api/cart/items", headers=headers, json={"productId": product["id"], "quantity": 2}
        )
        assert added.status_code == 201, added.text
    cart = added.json()
    assert _lines(cart) == {kept["id"]: None, dropped["id"]: None}
    assert _verdict(cart) == (True, None)

    off = await client.patch(
        f"/api/products/{dropped['id']}", headers=staff, json={"active": False}
    )
    assert off.status_code == 200, off.text
    cart = (await client.get("/api/cart", headers=headers)).json()
    assert _lines(cart) == {kept["id"]: None, dropped["id"]: "product_inactive"}
    assert _verdict(cart) == (False, "product_inactive")
    # A share link shows the lines as the owner sees them.
    share = await client.post("/api/cart/share", headers=headers, json={})
    shared = (await client.get(f"/api/carts/shared/{share.json()['token']}")).json()
    assert _lines(shared) == _lines(cart)

    # Less in stock than carted: the reserve step would refuse it.
    short = await client.post(
        f"/api/inventory/{kept['id']}/adjust", headers=staff, json={"delta": -4, "reason": "lost"}
    )
    assert short.status_code == 200, short.text
    cart = (await client.get("/api/cart", headers=headers)).json()
    assert _lines(cart) == {kept["id"]: "out_of_stock", dropped["id"]: "product_inactive"}
    assert _verdict(cart) == (False, "product_inactive")  # validate-order's refusal first

    gone = await client.delete(f"/api/cart/items/{dropped['id']}", headers=headers)
    assert _verdict(gone.json()) == (False, "out_of_stock")
    fixed = await client.patch(
        f"/api/cart/items/{kept['id']}", headers=headers, json={"quantity": 1}
    )
    assert _lines(fixed.json()) == {kept["id"]: None}
    assert _verdict(fixed.json()) == (True, None)
    emptied = await client.delete(f"/api/cart/items/{kept['id']}", headers=headers)
    assert _verdict(emptied.json()) == (False, "cart_empty")
