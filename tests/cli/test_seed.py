"""``shop seed``: deterministic, repeatable, through the services."""

from __future__ import annotations

import random

import httpx
import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from cli.seed import Seeder, _product, seed
from core.db import create_session_factory
from core.settings import Settings
from models.catalog import Product, Review
from models.users import Address, User


def test_the_same_seed_makes_the_same_products() -> None:
    leaves = [("Kitchen", "cat_x")]
    first = [_product(random.Random(5), n, *leaves[0]) for n in range(1, 4)]
    second = [_product(random.Random(5), n, *leaves[0]) for n in range(1, 4)]
    assert first == second
    other = [_product(random.Random(6), n, *leaves[0]) for n in range(1, 4)]
    assert other != first
    for product in first:
        assert product.price >= 0
        assert product.sku.startswith("SW-")


async def test_seeding_twice_adds_nothing_the_second_time(
    settings: Settings, engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    quiet = Console(quiet=True)
    report = await seed(settings, products=60, users=3, reviews=20, seed=9, console=quiet)
    assert report.products_added == 60
    assert report.users_added == 3
    assert 0 < report.reviews_added <= 20
    assert report.staff_password is not None
    again = await seed(settings, products=60, users=3, reviews=20, seed=9, console=quiet)
    assert (again.products_added, again.users_added, again.reviews_added) == (0, 0, 0)
    assert again.staff_password is None

    sessions = create_session_factory(engine)
    async with sessions() as session:
        seeded = (
            await session.exec(
                select(func.count()).select_from(Product).where(col(Product.sku).like("SW-%"))
            )
        ).one()
        assert seeded == 60
        customers = (
            await session.exec(select(User).where(col(User.email).like("customer%@example.com")))
        ).all()
        assert len(customers) == 3
        addresses = (
            await session.exec(
                select(func.count())
                .select_from(Address)
                .where(col(Address.user_id).in_([u.id for u in customers]))
            )
        ).one()
        assert addresses == 3
        reviews = (await session.exec(select(func.count()).select_from(Review))).one()
        assert reviews >= report.reviews_added

    # Seeded products went through the service: searchable, priced, in a category.
    found = await client.get("/api/products", params={"category": "kitchen", "limit": 100})
    assert found.status_code == 200
    login = await client.post(
        "/api/auth/login", json={"email": report.staff_email, "password": report.staff_password}
    )
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "staff"


@pytest.mark.parametrize("first_number", [1, 1001])
async def test_products_can_be_added_in_ranges(
    settings: Settings, engine: AsyncEngine, first_number: int
) -> None:
    seeder = Seeder(create_session_factory(engine), settings, Console(quiet=True))
    leaves = await seeder.categories()
    added = await seeder.products(random.Random(1), 5, leaves, first_number=first_number + 50_000)
    assert added == 5
