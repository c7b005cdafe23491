"""The cart's displayed totals are what the order charges: both come from one ``Quote``.

Every combination of the automatic discounts, coupons, shipping and tax destinations the
cart and pricing tests use, each checked out through the real workflow.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.factories import signed_up, stocked_product, unique_slug
from tests.orders.helpers import ADDRESS, order_body, product, wait_for

DISCOUNTS = ("none", "percentage", "fixed")  # 12.5 % on an ancestor category; 100 off
COUPONS = ("none", "percentage", "fixed")  # 10 %; 500 off
SHIPPING = ("charged", "free")  # goods under or over the 50.00 threshold
LANES = 6  # shoppers checking out side by side
GB_ADDRESS = {"street": "1 The Mall", "city": "London", "zip": "SW1A 1AA", "country": "GB"}
# The cart's tax query and the order's shipping address, for each destination.
DESTINATIONS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "US-MA": ({"country": "US", "state": "MA"}, ADDRESS),
    "GB": ({"country": "GB"}, GB_ADDRESS),
}


async def _created(
    http: httpx.AsyncClient, staff: dict[str, str], path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await http.post(path, headers=staff, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_the_cart_total_shown_is_the_order_total_charged(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    home = await _created(
        http, staff, "/api/categories", {"name": "Home", "slug": unique_slug("home")}
    )
    lamps = await _created(
        http,
        staff,
        "/api/categories",
        {"name": "Lamps", "slug": unique_slug("lamps"), "parentId": home["id"]},
    )
    await _created(
        http,
        staff,
        "/api/discounts",
        {
            "name": "Home week",
            "kind": "percentage",
            "percent": "12.5",
            "categoryId": home["id"],
            "startsAt": since,
        },
    )
    coupons = {
        "percentage": await _created(
            http,
            staff,
            "/api/coupons",
            {"code": unique_slug("PCT"), "kind": "percentage", "percent": "10"},
        ),
        "fixed": await _created(
            http,
            staff,
            "/api/coupons",
            {"code": unique_slug("FIX"), "kind": "fixed", "amount": 500},
        ),
    }
    plain = await product(http, staff, price=1250, stock=50)
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for discount, shipping in itertools.product(DISCOUNTS, SHIPPING):
        category = {"categoryId": lamps["id"]} if discount == "percentage" else {}
        price = 999 if shipping == "charged" else 2999
        item = await stocked_product(
            http, staff, price=price, stock=20, name=unique_slug("Lamp"), **category
        )
        if discount == "fixed":
            await _created(
                http,
                staff,
                "/api/discounts",
                {
                    "name": "Lamp deal",
                    "kind": "fixed",
                    "amount": 100,
                    "productId": item["id"],
                    "startsAt": since,
                },
            )
        items[discount, shipping] = item

    async def check_out(
        shopper: tuple[dict[str, Any], dict[str, str]],
        discount: str,
        coupon: str,
        shipping: str,
        destination: str,
    ) -> None:
        user, headers = shopper
        combination = (discount, coupon, shipping, destination)
        cart_id = ""
        for item, quantity in ((items[discount, shipping], 2), (plain, 1)):
            added = await http.post(
                "/api/cart/items",
                headers=headers,
                json={"productId": item["id"], "quantity": quantity},
            )
            assert added.status_code == 201, added.text
            cart_id = added.json()["id"]
        if coupon != "none":
            applied = await http.post(
                "/api/cart/coupon", headers=headers, json={"code": coupons[coupon]["code"]}
            )
            assert applied.status_code == 200, applied.text
        query, address = DESTINATIONS[destination]
        shown = await http.get("/api/cart", headers=headers, params=query)
        assert shown.status_code == 200, shown.text
        totals = shown.json()["totals"]
        # Each combination really has the parts it is named for.
        assert (totals["automaticDiscounts"] > 0) == (discount != "none"), (combination, totals)
        assert (totals["couponDiscount"] > 0) == (coupon != "none"), (combination, totals)
        assert (totals["shipping"] > 0) == (shipping == "charged"), (combination, totals)
        assert totals["tax"] > 0, (combination, totals)

        placed = await http.post(
            "/api/orders", headers=headers, json=order_body(cart_id, shippingAddress=address)
        )
        assert placed.status_code == 202, placed.text
        order = await wait_for(http, headers, placed.json()["id"], within=120)
        assert order["status"] == "fulfillment_queued", (combination, order)
        assert order["totals"] == totals, combination
        assert order["payment"]["amountCaptured"] == totals["total"], combination
        await receipt_adds_up(http, user["email"], order)

    async def lane(combinations: list[tuple[str, str, str, str]]) -> None:
        """One shopper checks out one combination after another (a cart each)."""
        shopper = await signed_up(http)
        for combination in combinations:
            await check_out(shopper, *combination)

    combinations = list(itertools.product(DISCOUNTS, COUPONS, SHIPPING, DESTINATIONS))
    await asyncio.gather(*(lane(combinations[i::LANES]) for i in range(LANES)))


async def test_a_coupon_under_the_free_shipping_threshold_charges_no_shipping(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """55.00 of goods and 10.00 off: the cart shows free shipping and the order charges
    that total (judged after the coupon, both added 5.99 of shipping)."""
    item = await product(http, staff, price=2750, stock=5)
    user, headers = await signed_up(http)
    added = await http.post(
        "/api/cart/items", headers=headers, json={"productId": item["id"], "quantity": 2}
    )
    assert added.status_code == 201, added.text
    code = await _created(
        http, staff, "/api/coupons", {"code": unique_slug("OFF"), "kind": "fixed", "amount": 1000}
    )
    applied = await http.post("/api/cart/coupon", headers=headers, json={"code": code["code"]})
    assert applied.status_code == 200, applied.text
    totals = (await http.get("/api/cart", headers=headers, params=DESTINATIONS["US-MA"][0])).json()[
        "totals"
    ]
    assert (totals["couponDiscount"], totals["shipping"], totals["total"]) == (1000, 0, 4781)
    placed = await http.post("/api/orders", headers=headers, json=order_body(added.json()["id"]))
    assert placed.status_code == 202, placed.text
    order = await wait_for(http, headers, placed.json()["id"], within=120)
    assert order["status"] == "fulfillment_queued", order
    assert order["totals"] == totals
    assert order["payment"]["amountCaptured"] == totals["total"]
    await receipt_adds_up(http, user["email"], order)


_AMOUNT = re.compile(r"(-?\d+\.\d{2}) [A-Z]{3}$")


async def receipt_adds_up(http: httpx.AsyncClient, email: str, order: dict[str, Any]) -> None:
    """The confirmation email's rows add up to what was charged (issue 11): lines to the
    subtotal, and subtotal - coupon + shipping + tax to the total."""
    # Sent beside queue-fulfillment, so it may land a moment after the order shows queued.
    # Until it is there (60 s of the loop's time at most: a loaded machine is slow).
    found: list[str] = []
    deadline = asyncio.get_running_loop().time() + 60
    while not found and asyncio.get_running_loop().time() < deadline:
        mail = (await http.get("/_sandbox/mail/messages", params={"to": email})).json()
        found = [
            m["text"] for m in mail if order["id"] in m["subject"] and "confirmed" in m["subject"]
        ]
        if not found:
            await asyncio.sleep(0.1)
    assert len(found) == 1, order["id"]
    text = found[0]
    rows: dict[str, int] = {}
    line_sum = 0
    for raw in text.splitlines():
        amount = _AMOUNT.search(raw.strip())
        if amount is None:
            continue
        cents = round(float(amount.group(1)) * 100)
        label = raw.strip().split(":")[0] if ":" in raw else ""
        if label:
            rows[label.split(" ")[0]] = cents
        else:
            line_sum += cents
    totals = order["totals"]
    # Lines are shown at their sale prices, so the subtotal is after automatic discounts.
    assert line_sum == rows["Subtotal"] == totals["subtotal"] - totals["automaticDiscounts"]
    assert ("saved you" in text) == (totals["automaticDiscounts"] > 0), text
    assert rows.get("Coupon", 0) == -totals["couponDiscount"], text
    assert (rows["Shipping"], rows["Tax"]) == (totals["shipping"], totals["tax"]), text
    assert sum(v for k, v in rows.items() if k != "Total") == rows["Total"] == totals["total"]
