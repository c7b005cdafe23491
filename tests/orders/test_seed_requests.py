"""Every request the seed document shows, sent as written to the running stack.

The seed (shared/seed/000_c8e16df9dde9472f.txt, "API Examples" and the user service's
endpoint list) uses placeholder ids (`prod_123`, `user_456`, `cart_789`) and a
placeholder `$TOKEN`. Each request is sent twice where that matters: exactly as written
(its placeholders answer with the documented problem, never a 5xx or a
`validation_error`), and with the placeholders replaced by real ids (it succeeds). The
README's "The seed's requests" section documents each answer.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import PASSWORD, bearer, login, register, unique_email, unique_slug
from tests.orders.helpers import product, wait_for

# The seed's bodies, verbatim (JSON from its curl examples).
SEED_ADD_TO_CART: dict[str, Any] = {"productId": "prod_123", "quantity": 2, "userId": "user_456"}
SEED_PLACE_ORDER: dict[str, Any] = {
    "cartId": "cart_789",
    "shippingAddress": {"street": "123 Main St", "city": "Boston", "state": "MA", "zip": "02101"},
    "paymentMethod": {"type": "credit_card", "token": "card_token_123"},
}
SEED_TRACK: dict[str, Any] = {
    "event": "product_view",
    "userId": "user_123",
    "properties": {"productId": "prod_456", "category": "electronics", "price": 99.99},
}
JSON = {"Content-Type": "application/json"}


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


async def test_the_user_service_endpoints(http: httpx.AsyncClient) -> None:
    """POST /users, GET/PUT /users/:id, POST /auth/login, POST /auth/logout."""
    email = unique_email("seed")
    created = await http.post(
        "/api/users", json={"email": email, "password": PASSWORD, "name": "Seed Shopper"}
    )
    assert created.status_code == 201, created.text
    user = created.json()
    tokens = await login(http, email=email)
    auth = bearer(tokens)

    fetched = await http.get(f"/api/users/{user['id']}", headers=auth)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["email"] == email

    # PUT replaces the profile: every field it holds, as the seed's "Update user".
    updated = await http.put(
        f"/api/users/{user['id']}",
        headers=auth | JSON,
        json={"email": email, "name": "Seed Shopper Renamed"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Seed Shopper Renamed"

    # The seed's path parameter as written (`/users/:id` with someone else's id): 404.
    problem(await http.get("/api/users/user_456", headers=auth), 404, "user_not_found")

    logged_out = await http.post("/api/auth/logout", headers=auth)
    assert logged_out.status_code == 204, logged_out.text
    problem(await http.get(f"/api/users/{user['id']}", headers=auth), 401, "token_revoked")


async def test_creating_an_order_as_the_seed_shows(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """The seed's two-step example: add to cart, then process the order."""
    user = await register(http)
    auth = bearer(await login(http, email=user["email"]))

    # As written: the placeholder userId is not the caller's (403 before anything else),
    # and without it the placeholder product does not exist (404).
    problem(
        await http.post("/api/cart/items", headers=auth | JSON, json=SEED_ADD_TO_CART),
        403,
        "user_mismatch",
    )
    without_user = {k: v for k, v in SEED_ADD_TO_CART.items() if k != "userId"}
    problem(
        await http.post("/api/cart/items", headers=auth | JSON, json=without_user),
        404,
        "product_not_found",
    )
    # As written, the order names a cart that does not exist: 404, nothing created.
    problem(
        await http.post("/api/orders", headers=auth | JSON, json=SEED_PLACE_ORDER),
        404,
        "cart_not_found",
    )

    # The same bodies with real ids: the seed's `credit_card` and `card_token_123` work.
    item = await product(http, staff, price=4999, stock=5)
    added = await http.post(
        "/api/cart/items",
        headers=auth | JSON,
        json=SEED_ADD_TO_CART | {"productId": item["id"], "userId": user["id"]},
    )
    assert added.status_code in (200, 201), added.text
    cart_id = added.json()["id"]
    placed = await http.post(
        "/api/orders", headers=auth | JSON, json=SEED_PLACE_ORDER | {"cartId": cart_id}
    )
    assert placed.status_code == 202, placed.text
    assert placed.json()["status"] == "pending"
    # Not priced yet (the workflow does that): no totals rather than a misleading 0.
    assert placed.json()["totals"] is None
    order = await wait_for(http, auth, placed.json()["id"])
    assert order["status"] == "fulfillment_queued", order
    assert order["totals"]["total"] > 2 * 4999  # two units and Massachusetts tax
    assert [(line["productId"], line["quantity"]) for line in order["items"]] == [(item["id"], 2)]
    assert order["paymentMethod"]["type"] == "card"  # the seed's credit_card, stored as card


async def test_the_order_pipelines_input_names_the_user(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """The seed's pipeline takes `{cartId, userId, shippingAddress, paymentMethod}`
    (`validateOrder`): a client sending that shape to `POST /orders`, its own id as
    `userId` as on `POST /cart/items`, places the order (it was 422 `unknown_field`);
    the seed's placeholder `user_456` is someone else: 403, nothing placed."""
    user = await register(http)
    auth = bearer(await login(http, email=user["email"]))
    item = await product(http, staff, price=2999, stock=5)
    added = await http.post(
        "/api/cart/items", headers=auth | JSON, json={"productId": item["id"], "quantity": 1}
    )
    assert added.status_code == 201, added.text
    pipeline_input = SEED_PLACE_ORDER | {"cartId": added.json()["id"], "userId": "user_456"}
    problem(
        await http.post("/api/orders", headers=auth | JSON, json=pipeline_input),
        403,
        "user_mismatch",
    )
    mine = await http.get("/api/orders", headers=auth)
    assert mine.status_code == 200, mine.text
    assert mine.json()["total"] == 0
    placed = await http.post(
        "/api/orders", headers=auth | JSON, json=pipeline_input | {"userId": user["id"]}
    )
    assert placed.status_code == 202, placed.text
    assert placed.json()["userId"] == user["id"]
    order = await wait_for(http, auth, placed.json()["id"])
    assert order["status"] == "fulfillment_queued", order


async def test_an_unknown_payment_method_type_is_named(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    user = await register(http)
    auth = bearer(await login(http, email=user["email"]))
    body = SEED_PLACE_ORDER | {"paymentMethod": {"type": "bitcoin", "token": "card_token_123"}}
    response = await http.post("/api/orders", headers=auth | JSON, json=body)
    problem(response, 422, "invalid_payment_method")
    assert response.json()["detail"] == (
        "paymentMethod.type: unknown payment method type 'bitcoin'; accepted: card, credit_card"
    )


async def test_the_product_services_filters(http: httpx.AsyncClient, staff: dict[str, str]) -> None:
    """`getProducts({category, minPrice, maxPrice, search, page = 1, limit = 20})`: the
    seed's filter names, all at once, are the query's (prices in minor units here)."""
    slug = unique_slug("seed-cat")
    created = await http.post(
        "/api/categories", headers=staff | JSON, json={"name": "Seed Things", "slug": slug}
    )
    assert created.status_code == 201, created.text
    item = await product(http, staff, price=4999, stock=1)
    moved = await http.patch(
        f"/api/products/{item['id']}", headers=staff | JSON, json={"categoryId": slug}
    )
    assert moved.status_code == 200, moved.text
    filters = f"category={slug}&minPrice=4000&maxPrice=5000&page=1&limit=20"
    listed = await http.get(f"/api/products?{filters}")
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["items"]] == [item["id"]]
    searched = await http.get(f"/api/products?{filters}&search=thing")
    assert searched.status_code == 200, searched.text
    outside = await http.get(f"/api/products?category={slug}&minPrice=5000&page=1&limit=20")
    assert outside.json()["items"] == []


async def test_the_seed_dashboard_answers_staff(
    http: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """`GET /api/analytics/dashboard?timeRange=7d` with a staff token, as the seed shows;
    a customer's token is refused."""
    response = await http.get("/api/analytics/dashboard?timeRange=7d", headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["range"]["timeRange"] == "7d"
    assert {"sales", "users", "products", "conversion", "series", "timestamp"} <= set(body)
    user = await register(http)
    auth = bearer(await login(http, email=user["email"]))
    customer = await http.get("/api/analytics/dashboard?timeRange=7d", headers=auth)
    problem(customer, 403, "staff_only")


async def test_tracking_a_custom_event_as_the_seed_shows(http: httpx.AsyncClient) -> None:
    """As written, `user_123` is not the caller: 403. With the caller's own id: 202."""
    user = await register(http)
    auth = bearer(await login(http, email=user["email"]))
    problem(
        await http.post("/api/analytics/track", headers=auth | JSON, json=SEED_TRACK),
        403,
        "user_mismatch",
    )
    tracked = await http.post(
        "/api/analytics/track", headers=auth | JSON, json=SEED_TRACK | {"userId": user["id"]}
    )
    assert tracked.status_code == 202, tracked.text
    assert tracked.json() == {"accepted": 1}


async def test_the_seed_funnel(http: httpx.AsyncClient, staff: dict[str, str]) -> None:
    """`GET /api/analytics/funnel` as written, with a staff token: the seed's five steps
    over the last 7 days. A shopper's token is refused (staff only)."""
    response = await http.get("/api/analytics/funnel", headers=staff)
    assert response.status_code == 200, response.text
    assert [step["step"] for step in response.json()["steps"]] == [
        "product_view",
        "add_to_cart",
        "checkout_start",
        "payment_start",
        "order_complete",
    ]
    user = await register(http)
    shopper = bearer(await login(http, email=user["email"]))
    problem(await http.get("/api/analytics/funnel", headers=shopper), 403, "staff_only")
