"""A product's detail read with its stock in one statement, without the ORM.

A product read for the first time by an API process (each process keeps the answers it
rendered: ``services.catalog.answers``) cost a Redis read of the shared cache, the row
through the ORM (building the statement, the identity map, the ``Product`` instance), a
second statement for its stock when the process's stock view did not hold it, and a
Redis write: 2.5-4.7 ms of API CPU in-process, and most of the product detail's p99
under load (issue #15). Here it is one prepared statement on a pooled connection's asyncpg
driver, reading the row and its stock together, rendered by the same ``to_wire``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

# The columns ``ProductDetail`` holds, in its fields' order. ``active IS true`` as the
# ORM read wrote it (``ProductRepository.get``); a missing stock row is 0 at revision 0,
# as ``StockRepository.available_revisions`` reads it.
_COLUMNS = (
    "SELECT p.id, p.sku, p.name, p.slug, p.description, p.category_id, p.price,"
    " p.currency, p.compare_at_price, p.images, p.attributes, p.active,"
    " p.low_stock_threshold, p.auto_reorder, p.reorder_quantity, p.rating_count,"
    " p.rating_sum, p.rating_1, p.rating_2, p.rating_3, p.rating_4, p.rating_5,"
    " p.created_at, p.updated_at,"
    " coalesce(s.on_hand - s.reserved, 0), coalesce(s.revision, 0)"
    " FROM products p LEFT JOIN stock_levels s ON s.product_id = p.id"
)
_DETAIL = (
    _COLUMNS + " WHERE (p.id = $1 OR p.slug = $1) AND p.deleted_at IS NULL AND p.active IS true"
    " LIMIT 1"
)
# A search's page by id, whatever the products' state (``ProductRepository.rendered_by_ids``):
# one array parameter, so one prepared statement for every page size.
_BY_IDS = _COLUMNS + " WHERE p.id = ANY($1::text[])"


@dataclass(slots=True)
class ProductDetail:
    """A listed product's row (the columns of ``Product`` that rendering reads) and its
    stock."""

    id: str
    sku: str
    name: str
    slug: str
    description: str
    category_id: str | None
    price: int
    currency: str
    compare_at_price: int | None
    images: list[str]
    attributes: dict[str, Any]
    active: bool
    low_stock_threshold: int
    auto_reorder: bool
    reorder_quantity: int
    rating_count: int
    rating_sum: int
    rating_1: int
    rating_2: int
    rating_3: int
    rating_4: int
    rating_5: int
    created_at: datetime
    updated_at: datetime
    # Available stock and its row's revision (``StockView``).
    available: int
    stock_revision: int


class ProductDetailRepository:
    """On a pooled connection, not a session: a session's transaction bookkeeping cost
    more than the statement (0.35-0.54 against 0.22-0.32 ms of CPU for the read)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def listed(self, key: str) -> ProductDetail | None:
        """The active, not deleted product whose id or slug is ``key``, with its stock.
        Through asyncpg directly, as ``StockRepository.available_revisions`` reads: the
        driver keeps the prepared statement, the JSON columns are decoded by the codecs
        SQLAlchemy set on the connection, and no transaction is begun (SQLAlchemy's
        return of the connection to the pool then has nothing to roll back)."""
        driver = (await self.connection.get_raw_connection()).driver_connection
        assert driver is not None
        row = await driver.fetchrow(_DETAIL, key)
        return None if row is None else ProductDetail(*row)

    async def by_ids(self, ids: Sequence[str]) -> dict[str, ProductDetail]:
        """Products by id, whatever their state, with their stock, as ``listed`` reads
        one."""
        driver = (await self.connection.get_raw_connection()).driver_connection
        assert driver is not None
        rows = await driver.fetch(_BY_IDS, list(ids))
        return {row[0]: ProductDetail(*row) for row in rows}
