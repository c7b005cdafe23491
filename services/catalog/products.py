"""Products: staff writes and the catalogue's page (listing or search), over
``ProductRepository``; what a page is asked is ``product_query``, how a product is shown
``rendering``."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, ValidationFailed
from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.catalog import Product, ProductCreate, ProductUpdate
from services.catalog.categories import CategoryRepository
from services.catalog.errors import CategoryNotFound, ProductNotFound
from services.catalog.product_query import ProductQuery, SearchResult
from services.catalog.product_repository import ProductRepository
from services.inventory.stock import StockService

# How many slugs a product made from its name tries when others of that name are
# created at the same moment.
SLUG_ATTEMPTS = 5


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:200] or "product"


class ProductSearch(Protocol):
    """Where a search's matches come from: PostgreSQL full-text search, or the search
    index (``services.catalog.search.IndexedSearch``). Both answer the same page, with
    the same ``total``/``total_exact`` rules; rows always come from PostgreSQL."""

    @property
    def name(self) -> str:
        """Names the engine and its generation (cache keys of its answers)."""

    async def search(
        self, products: ProductRepository, query: ProductQuery, category_ids: list[str] | None
    ) -> SearchResult: ...


class PostgresSearch:
    """PostgreSQL full-text search and trigram similarity (``ProductRepository.search``)."""

    name = "postgres"

    async def search(
        self, products: ProductRepository, query: ProductQuery, category_ids: list[str] | None
    ) -> SearchResult:
        return await products.search(query, category_ids)


POSTGRES_SEARCH = PostgresSearch()


async def product_changed(session: AsyncSession, product_id: str, reason: str) -> None:
    """In the caller's transaction: the search index re-reads this product."""
    await publish(session, EventType.PRODUCT_CHANGED, product_id, {"reason": reason})


class ProductService:
    def __init__(self, session: AsyncSession) -> None:
        self.products = ProductRepository(session)
        self.categories = CategoryRepository(session)

    async def get(self, key: str, *, include_inactive: bool = False) -> Product:
        product = await self.products.get(key, include_inactive=include_inactive)
        if product is None:
            raise ProductNotFound(f"no product {key}")
        return product

    async def _category(self, key: str | None) -> str | None:
        if key is None:
            return None
        category = await self.categories.by_id_or_slug(key)
        if category is None:
            raise CategoryNotFound(f"no category {key}", field="categoryId")
        return category.id

    async def _free_slug(self, base: str, except_id: str | None = None) -> str:
        slug, n = base, 2
        while await self.products.slug_taken(slug, except_id=except_id):
            slug, n = f"{base}-{n}", n + 1
        return slug

    async def create(self, data: ProductCreate) -> Product:
        if await self.products.sku_taken(data.sku):
            raise Conflict(f"SKU {data.sku} is taken", code="sku_taken", field="sku")
        fields = data.model_dump(mode="json", exclude={"slug"})
        fields["category_id"] = await self._category(data.category_id)
        if data.slug is not None:
            if await self.products.slug_taken(data.slug):
                raise Conflict(f"the slug {data.slug!r} is taken", code="slug_taken", field="slug")
            product = Product(slug=data.slug, **fields)
            await self.products.save(product)
        else:
            product = await self._save_with_free_slug(slugify(data.name), fields)
        await product_changed(self.products.session, product.id, "created")
        return product

    async def _save_with_free_slug(self, base: str, fields: dict[str, Any]) -> Product:
        """A slug made from the name, taken by a product committed while this one was
        being written (two of one name at once): the next free one, not a 409 for a slug
        the client never chose."""
        product = Product(slug=await self._free_slug(base), **fields)
        for _ in range(SLUG_ATTEMPTS - 1):
            try:
                await self.products.save(product, savepoint=True)
                return product
            except Conflict as exc:
                if exc.code != "slug_taken":
                    raise
            product.slug = await self._free_slug(base)
        await self.products.save(product)
        return product

    async def update(self, key: str, data: ProductUpdate) -> Product:
        product = await self.get(key, include_inactive=True)
        changes = data.model_dump(mode="json", exclude_unset=True)
        new_sku, new_slug = changes.get("sku"), changes.get("slug")
        if (
            new_sku
            and new_sku != product.sku
            and await self.products.sku_taken(new_sku, except_id=product.id)
        ):
            raise Conflict(f"SKU {changes['sku']} is taken", code="sku_taken", field="sku")
        if (
            new_slug
            and new_slug != product.slug
            and await self.products.slug_taken(new_slug, except_id=product.id)
        ):
            raise Conflict("that slug is taken", code="slug_taken", field="slug")
        if "category_id" in changes:
            changes["category_id"] = await self._category(changes["category_id"])
        for required in (
            "sku",
            "name",
            "slug",
            "price",
            "currency",
            "active",
            "low_stock_threshold",
            "auto_reorder",
            "reorder_quantity",
        ):
            if required in changes and changes[required] is None:
                raise ValidationFailed(f"{required} cannot be null", field=_camel(required))
        for key_, value in changes.items():
            if value is None and key_ in ("images", "attributes", "description"):
                value = [] if key_ == "images" else {} if key_ == "attributes" else ""
            if key_ == "currency" and value is not None:
                value = value.upper()
            setattr(product, key_, value)
        product.updated_at = utcnow()
        await self.products.save(product)
        if "low_stock_threshold" in changes:
            # A new threshold is a crossing too: raised above what is available, the
            # alert (and auto-reorder) goes out now, not at the next stock movement.
            await StockService(self.products.session).after_change(product.id)
        await product_changed(self.products.session, product.id, "updated")
        return product

    async def create_many(self, items: list[ProductCreate]) -> dict[str, str]:
        """Many products at once (seeding, imports): validated like ``create``, written in
        one bulk statement. Products whose SKU exists already are skipped; slugs are
        made unique by suffixing the SKU. Returns SKU → id of those added."""
        now = utcnow()
        rows = []
        for data in items:
            fields = data.model_dump(mode="json", exclude={"slug"})
            slug = data.slug or f"{slugify(data.name)}-{data.sku.lower()}"
            rows.append(
                Product(slug=slug, **fields, created_at=now, updated_at=now).model_dump(
                    exclude={"search_vector", "deleted_at"}
                )
            )
        return await self.products.insert_many(rows)

    async def after_bulk_load(self) -> None:
        """After ``create_many`` of many products: see ``ProductRepository.after_bulk_load``."""
        await self.products.after_bulk_load()

    async def delete(self, key: str) -> None:
        """Soft: orders and reviews keep referring to it; it leaves the catalogue."""
        product = await self.get(key, include_inactive=True)
        await self.products.soft_delete(product.id)
        await product_changed(self.products.session, product.id, "deleted")

    async def category_subtree(self, key: str) -> list[str]:
        """Ids of the category named by id or slug and its descendants; empty if unknown."""
        return await self.categories.subtree_of(key)

    async def search(
        self,
        query: ProductQuery,
        known_total: int | None = None,
        engine: ProductSearch = POSTGRES_SEARCH,
        subtree: list[str] | None = None,
    ) -> SearchResult:
        """A page of the catalogue. Listings are read from PostgreSQL; a search's matches
        come from ``engine``. ``subtree``: ``query.category``'s, if the caller has it
        (``category_subtree``); else it is read here."""
        category_ids = None
        if query.category is not None:
            category_ids = subtree
            if category_ids is None:
                category_ids = await self.category_subtree(query.category)
            if not category_ids:
                return SearchResult([], 0)  # an unknown category is an empty page, not an error
        if query.search:
            return await engine.search(self.products, query, category_ids)
        return await self.products.search(query, category_ids, known_total)
