"""Regression tests for defects found in review: each names the scenario it guards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from core.db import create_session_factory, transaction
from models.auth import RefreshToken
from models.base import utcnow
from models.carts import Cart
from models.inventory import ReservationLine
from models.users import Role
from services.auth import hash_refresh_token
from services.catalog.pricing import CouponService
from services.inventory import InventoryService, ReservationLapsed
from services.users import UserRepository
from tests.factories import PASSWORD, bearer, login, register, signed_up, unique_email, unique_slug

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


async def test_parallel_guesses_cannot_slip_under_the_throttle(make_client: ClientFactory) -> None:
    client = await make_client(login_max_failures_per_email=5, login_throttle_window_seconds=60)
    user = await register(client)
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/auth/login", json={"email": user["email"], "password": f"guess number {i}"}
            )
            for i in range(20)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) <= 5
    assert statuses.count(429) >= 15


async def test_a_refresh_token_minted_while_its_session_was_revoked_is_dead(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await register(client)
    first = await login(client, email=user["email"])
    second = (
        await client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    ).json()
    # What a logout racing that refresh leaves behind: the old token revoked, the new
    # one (inserted after the logout's UPDATE began) not.
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.token_hash) == hash_refresh_token(first["refreshToken"]))
            .values(revoked_at=utcnow())
        )
    response = await client.post("/api/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert response.status_code == 401


async def _promote(engine: AsyncEngine, user_id: str, role: Role) -> None:
    async with transaction(create_session_factory(engine)) as session:
        row = await UserRepository(session).get(user_id)
        assert row is not None
        row.role = role
        session.add(row)


async def test_only_admins_manage_staff_accounts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    staff = await register(client, name="Staff")
    admin = await register(client, name="Admin")
    await _promote(engine, staff["id"], Role.STAFF)
    await _promote(engine, admin["id"], Role.ADMIN)
    staff_h = bearer(await login(client, email=staff["email"]))
    admin_h = bearer(await login(client, email=admin["email"]))
    refused = await client.patch(f"/api/users/{admin['id']}", headers=staff_h, json={"name": "X"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "admin_only"
    assert (await client.delete(f"/api/users/{admin['id']}", headers=staff_h)).status_code == 403
    allowed = await client.patch(f"/api/users/{staff['id']}", headers=admin_h, json={"name": "Ok"})
    assert allowed.status_code == 200


async def test_current_password_guesses_are_throttled(make_client: ClientFactory) -> None:
    client = await make_client(login_max_failures_per_email=2, login_throttle_window_seconds=60)
    user, headers = await signed_up(client)
    statuses = []
    for i in range(3):
        response = await client.patch(
            f"/api/users/{user['id']}",
            headers=headers,
            json={"password": "a brand new long password", "currentPassword": f"guess {i}"},
        )
        statuses.append(response.status_code)
    assert statuses == [403, 403, 429]  # issue 11: a wrong current password is 403


async def test_deleting_an_account_closes_its_cart(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    product = (
        await client.post("/api/products", headers=staff,
                          json={"sku": unique_slug("del"), "name": "Gone", "price": 100})
    ).json()  # fmt: skip
    await client.post(
        f"/api/inventory/{product['id']}/adjust", headers=staff, json={"delta": 1, "reason": "in"}
    )
    user, headers = await signed_up(client)
    cart = (
        await client.post("/api/cart/items", headers=headers, json={"productId": product["id"]})
    ).json()
    assert (await client.delete(f"/api/users/{user['id']}", headers=headers)).status_code == 204
    async with create_session_factory(engine)() as session:
        row = (await session.exec(select(Cart).where(Cart.id == cart["id"]))).one()
    assert row.status == "closed"


async def test_out_of_range_numbers_are_422_not_500(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    assert (
        await client.get("/api/products", params={"minPrice": 99_999_999_999})
    ).status_code == 422
    huge = await client.post(
        "/api/products",
        headers=staff,
        json={"sku": unique_slug("big"), "name": "Big", "price": 3_000_000_000},
    )
    assert huge.status_code == 422
    product = (
        await client.post("/api/products", headers=staff,
                          json={"sku": unique_slug("rv"), "name": "Paged", "price": 1})
    ).json()  # fmt: skip
    paged = await client.get(f"/api/products/{product['id']}/reviews", params={"page": 10**12})
    assert paged.status_code == 422


async def test_product_replace_keeps_the_slug_and_nulls_are_refused(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    sku = unique_slug("put")
    product = (
        await client.post(
            "/api/products", headers=staff, json={"sku": sku, "name": "Put Me", "price": 10}
        )
    ).json()
    replaced = await client.put(
        f"/api/products/{product['id']}",
        headers=staff,
        json={"sku": sku, "name": "Put Again", "price": 20},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["slug"] == product["slug"]
    nulled = await client.patch(
        f"/api/products/{product['id']}", headers=staff, json={"active": None}
    )
    assert nulled.status_code == 422
    assert nulled.json()["field"] == "active"


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


async def test_a_lapsed_reservation_is_never_reported_as_held(
    client: httpx.AsyncClient, staff: dict[str, str], engine: AsyncEngine
) -> None:
    product = (
        await client.post("/api/products", headers=staff,
                          json={"sku": unique_slug("lap"), "name": "Lapse", "price": 1})
    ).json()  # fmt: skip
    await client.post(
        f"/api/inventory/{product['id']}/adjust", headers=staff, json={"delta": 2, "reason": "in"}
    )
    sessions = create_session_factory(engine)
    line = [ReservationLine(product_id=product["id"], quantity=1)]
    order = f"ord_lap_{product['id'][-8:]}"
    async with transaction(sessions) as session:
        await InventoryService(session).reserve(order, line, timedelta(minutes=5))
    async with transaction(sessions) as session:
        await InventoryService(session).release(order)
    for action in ("reserve", "commit"):
        try:
            async with transaction(sessions) as session:
                service = InventoryService(session)
                if action == "reserve":
                    await service.reserve(order, line, timedelta(minutes=5))
                else:
                    await service.commit(order)
        except ReservationLapsed:
            continue
        raise AssertionError(f"{action} after the release must answer reservation_lapsed")


async def test_sign_in_answers_are_never_replayed(client: httpx.AsyncClient) -> None:
    user = await register(client)
    key = {"Idempotency-Key": f"login-{unique_email()}"}
    body = {"email": user["email"], "password": PASSWORD}
    first = await client.post("/api/auth/login", json=body, headers=key)
    second = await client.post("/api/auth/login", json=body, headers=key)
    assert first.status_code == second.status_code == 200
    assert "idempotent-replayed" not in second.headers
    assert first.json()["refreshToken"] != second.json()["refreshToken"]


async def test_readiness_does_not_show_raw_errors(make_client: ClientFactory) -> None:
    from cli.stack.process import free_port

    port = free_port()
    client = await make_client(redis_url=f"redis://127.0.0.1:{port}/0")
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")
    assert str(port) not in response.text
