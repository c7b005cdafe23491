"""Keyword-only helpers that create things through the API, with sensible defaults."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from core.db import create_session_factory, transaction
from models.inventory import StockLevel
from models.users import Role
from services.users import UserRepository

# The ``make_client`` fixture: a client over an app with some settings changed.
ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]

PASSWORD = "violet tangerine orbit lamp 42"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid4().hex[:10]}@example.com"


async def register(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    name: str = "Ada Lovelace",
) -> dict[str, Any]:
    response = await client.post(
        "/api/users",
        json={"email": email or unique_email(), "password": password, "name": name},
        headers={"User-Agent": "pytest-client/1.0"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient, *, email: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['accessToken']}"}


async def signed_up(
    client: httpx.AsyncClient, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """A registered, signed-in customer: (user, auth headers)."""
    user = await register(client, **kwargs)
    tokens = await login(client, email=user["email"], password=kwargs.get("password", PASSWORD))
    return user, bearer(tokens)


async def promote(engine: AsyncEngine, user_id: str, role: Role) -> None:
    """Give a registered user a role, as an admin would (straight in the database)."""
    async with transaction(create_session_factory(engine)) as session:
        row = await UserRepository(session).get(user_id)
        assert row is not None
        row.role = role
        session.add(row)


async def staff_headers(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    """A signed-in staff member (registered, then promoted in the database)."""
    user = await register(client, name="Staff Member")
    await promote(engine, user["id"], Role.STAFF)
    return bearer(await login(client, email=user["email"]))


def unique_slug(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


async def stocked_product(
    client: httpx.AsyncClient, staff: dict[str, str], *, price: int, stock: int, **fields: Any
) -> dict[str, Any]:
    """A product created by staff, with ``stock`` units booked in."""
    response = await client.post(
        "/api/products",
        headers=staff,
        json={"sku": unique_slug("sku"), "name": "Test Thing", "price": price} | fields,
    )
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    if stock:
        adjusted = await client.post(
            f"/api/inventory/{product['id']}/adjust",
            headers=staff,
            json={"delta": stock, "reason": "test stock"},
        )
        assert adjusted.status_code == 200, adjusted.text
    return product


async def fill_stock(engine: AsyncEngine, product_id: str, on_hand: int) -> None:
    """The product's stock on hand set to ``on_hand`` in the database: near the most a
    product holds, which no adjustment reaches in one go (at most 1,000,000)."""
    async with transaction(create_session_factory(engine)) as session:
        await session.exec(
            update(StockLevel)
            .where(col(StockLevel.product_id) == product_id)
            .values(on_hand=on_hand)
        )
