"""What rendering and pricing read of a product: a ``Product`` loaded by the ORM, a
product read without it (``services.catalog.detail.ProductDetail``), or a row of the
columns a page renders (a search's page: ``ProductRepository.rendered_by_ids``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row


class ProductRow(Protocol):
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


# ``to_wire`` and ``PriceBook.effective_price`` take any of them.
ProductFields = ProductRow | Row[Any]
