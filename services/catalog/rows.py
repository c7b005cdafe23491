"""What rendering and pricing read of a product (``to_wire``,
``PriceBook.effective_price``): a ``Product`` loaded by the ORM, a listed product read
with its stock without it (``services.catalog.detail.ProductDetail``), or a row of the
columns a page renders (a search's page: ``ProductRepository.rendered_by_ids``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from models.catalog import Product
from services.catalog.detail import ProductDetail

ProductFields = Product | ProductDetail | Row[Any]
