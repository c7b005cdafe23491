"""Staff writes to the catalogue under concurrency: committed, in transactions of their
own (``create_session_factory``), as two API requests would run."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_session_factory, transaction
from models.catalog import Product, ProductCreate
from services.catalog.products import ProductService, slugify
from tests.factories import unique_slug
from tests.lock_waits import waiting_on_locks


async def test_two_products_of_one_name_created_at_once_both_get_a_slug(
    engine: AsyncEngine,
) -> None:
    """Neither gave a slug, so neither can have asked for a taken one: the one whose
    insert met the other's uncommitted slug takes the next free one. Before, it was 409
    ``slug_taken``, for a slug the client never chose."""
    sessions = create_session_factory(engine)
    name = f"Racing Lamp {uuid.uuid4().hex[:10]}"

    async def create() -> Product:
        async with transaction(sessions) as session:
            return await ProductService(session).create(
                ProductCreate(sku=unique_slug("race"), name=name, price=100)
            )

    async with transaction(sessions) as first_session:
        first = await ProductService(first_session).create(
            ProductCreate(sku=unique_slug("race"), name=name, price=100)
        )
        second_create = asyncio.create_task(create())
        # The second insert waits on the first's uncommitted slug.
        await waiting_on_locks(engine, 1, query_like="INSERT INTO products%")
    second = await second_create
    assert first.slug == slugify(name)
    assert second.slug == f"{slugify(name)}-2"
    async with transaction(sessions) as session:
        stored = await ProductService(session).get(second.slug)
        assert (stored.id, stored.name) == (second.id, name)
        assert (await ProductService(session).get(first.slug)).id == first.id
