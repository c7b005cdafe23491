"""Products: staff writes, public listing, search and detail. All product SQL is here."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Protocol
from typing import cast as cast_type

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    Row,
    Table,
    bindparam,
    cast,
    exists,
    func,
    or_,
    text,
    true,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

from core.errors import Conflict, ValidationFailed
from core.events import EventType
from core.outbox import publish
from models.base import utcnow
from models.catalog import Product, ProductCreate, ProductPublic, ProductUpdate, RatingSummary
from models.inventory import StockLevel
from services.catalog.categories import CategoryRepository
from services.catalog.detail import ProductDetail, ProductDetailRepository
from services.catalog.errors import CategoryNotFound, ProductNotFound
from services.catalog.pricing import PriceBook
from services.catalog.rows import ProductFields
from services.inventory.stock import StockService

# Searches are matched on their first 100 characters: enough for any real query, and a
# paste costs no more than a short one.
SEARCH_CHARS = 100
# The longest ``search`` the API accepts (422 above it). At most 6 KB percent-encoded
# (12 bytes a character): a URL that fits the 8 KB request line nginx reads by default
# and the API's own request head limit (``cli.serve.MAX_REQUEST_HEAD_BYTES``).
SEARCH_MAX_LENGTH = 500
# A search counts its matches up to this many and ranks by relevance only this many
# candidates (the first found by the indexes), as search engines do: a broad word that
# matches 10,000 products then costs what 1,000 do. Above it ``total`` is a lower bound
# (``total_exact`` false) and relevance-ranked pages end at the candidates' end.
SEARCH_CANDIDATES = 1_000


# How many slugs a product made from its name tries when others of that name are
# created at the same moment.
SLUG_ATTEMPTS = 5


class ProductSort(StrEnum):
    NEWEST = "newest"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    RATING = "rating"
    RELEVANCE = "relevance"


@dataclass(frozen=True)
class SearchResult:
    rows: Sequence[ProductFields]
    total: int
    # False when a search matched more than ``SEARCH_CANDIDATES``: ``total`` is then that
    # cap, a lower bound of the true count.
    total_exact: bool = True


@dataclass(frozen=True)
class ProductQuery:
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    search: str | None = None
    in_stock: bool | None = None
    sort: ProductSort | None = None
    page: int = 1
    limit: int = 20

    def cache_params(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None else None) for k, v in self.__dict__.items()}

    def count_params(self) -> dict[str, Any]:
        """What the total depends on: the filters, not the page or the order."""
        return {k: v for k, v in self.cache_params().items() if k not in ("sort", "page", "limit")}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def normalize_search(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = " ".join(unicodedata.normalize("NFKC", text).split())[:SEARCH_CHARS]
    return cleaned or None


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:200] or "product"


def _rating_average(product: ProductFields) -> float | None:
    if not product.rating_count:
        return None
    return float(
        (Decimal(product.rating_sum) / product.rating_count).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_EVEN
        )
    )


def _rating_histogram(product: ProductFields) -> dict[str, int]:
    return {
        "1": product.rating_1,
        "2": product.rating_2,
        "3": product.rating_3,
        "4": product.rating_4,
        "5": product.rating_5,
    }


def rating_summary(product: Product) -> RatingSummary:
    return RatingSummary(
        average=_rating_average(product),
        count=product.rating_count,
        histogram=_rating_histogram(product),
    )


def to_public(product: Product, prices: PriceBook, available: int = 0) -> ProductPublic:
    return ProductPublic(
        id=product.id,
        sku=product.sku,
        name=product.name,
        slug=product.slug,
        description=product.description,
        category_id=product.category_id,
        price=product.price,
        effective_price=prices.effective_price(product),
        currency=product.currency,
        compare_at_price=product.compare_at_price,
        images=list(product.images),
        attributes=dict(product.attributes),
        active=product.active,
        low_stock_threshold=product.low_stock_threshold,
        auto_reorder=product.auto_reorder,
        reorder_quantity=product.reorder_quantity,
        rating=rating_summary(product),
        available=available,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _json_time(moment: datetime) -> str:
    """As pydantic writes a datetime in JSON (UTC as ``Z``)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def to_wire(product: ProductFields, prices: PriceBook, available: int = 0) -> dict[str, Any]:
    """``to_public(...)`` as it goes on the wire (``model_dump(mode="json",
    by_alias=True)``), built directly: a listing page of 20 built through pydantic cost
    more than the query that read it. ``ProductPublic`` still documents the shape, and a
    test holds the two equal."""
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "slug": product.slug,
        "description": product.description,
        "categoryId": product.category_id,
        "price": product.price,
        "effectivePrice": prices.effective_price(product),
        "currency": product.currency,
        "compareAtPrice": product.compare_at_price,
        "images": list(product.images),
        "attributes": dict(product.attributes),
        "active": product.active,
        "lowStockThreshold": product.low_stock_threshold,
        "autoReorder": product.auto_reorder,
        "reorderQuantity": product.reorder_quantity,
        # Not through ``RatingSummary``: a pydantic model per product was 5% of an API
        # process's samples under listing pages of 100.
        "rating": {
            "average": _rating_average(product),
            "count": product.rating_count,
            "histogram": _rating_histogram(product),
        },
        "available": available,
        "createdAt": _json_time(product.created_at),
        "updatedAt": _json_time(product.updated_at),
    }


def _orderings() -> dict[ProductSort, tuple[Any, ...]]:
    average = cast(col(Product.rating_sum), Float) / func.nullif(col(Product.rating_count), 0)
    return {
        ProductSort.NEWEST: (col(Product.created_at).desc(), col(Product.id).desc()),
        ProductSort.PRICE_ASC: (col(Product.price).asc(), col(Product.id)),
        ProductSort.PRICE_DESC: (col(Product.price).desc(), col(Product.id)),
        ProductSort.RATING: (
            average.desc().nulls_last(),
            col(Product.rating_count).desc(),
            col(Product.id),
        ),
    }


# SQL expressions are immutable: built once, not on every listing (building the five
# orderings cost more than the rest of a listing's statement).
_ORDERINGS = _orderings()
# What every listing and search filters on: active products that are not deleted.
# Written so that they imply the listing indexes' predicate (``active AND deleted_at IS
# NULL``; ``active = true`` is simplified to ``active``): PostgreSQL does not prove that
# ``active IS true`` implies ``active``, so with ``is_(True)`` those
# partial indexes were never used and a filtered listing's page and count read the heap
# through a bitmap of two other indexes (13 ms of PostgreSQL against 1.4 ms).
# Columns no page shows (``to_wire``).
_NOT_RENDERED = frozenset({"search_vector", "deleted_at"})
_LISTED: tuple[ColumnElement[bool], ...] = (
    col(Product.active) == true(),
    col(Product.deleted_at).is_(None),
)


def _filters(
    category_ids: Any, min_price: Any, max_price: Any, in_stock: bool | None
) -> list[ColumnElement[bool]]:
    """The filters given (not None), as values or as bound parameters."""
    conditions: list[ColumnElement[bool]] = list(_LISTED)
    if category_ids is not None:
        conditions.append(col(Product.category_id).in_(category_ids))
    if min_price is not None:
        conditions.append(col(Product.price) >= min_price)
    if max_price is not None:
        conditions.append(col(Product.price) <= max_price)
    if in_stock is not None:
        has_stock = exists().where(
            col(StockLevel.product_id) == col(Product.id),
            col(StockLevel.on_hand) - col(StockLevel.reserved) > 0,
        )
        conditions.append(has_stock if in_stock else ~has_stock)
    return conditions


def listing_conditions(
    query: ProductQuery, category_ids: list[str] | None
) -> list[ColumnElement[bool]]:
    """What a listing or search filters on, besides the search words."""
    return _filters(category_ids, query.min_price, query.max_price, query.in_stock)


@dataclass(frozen=True)
class _ListingShape:
    """Which filters a listing has (not their values) and its order."""

    category: bool
    min_price: bool
    max_price: bool
    in_stock: bool | None
    sort: ProductSort


@dataclass(frozen=True)
class _ListingStatements:
    page: SelectOfScalar[Product]
    count: SelectOfScalar[int]


def _order_by(sort: ProductSort, rank: ColumnElement[float] | None = None) -> list[Any]:
    """The SQL order of ``sort``; ties always broken by id, so pages never overlap."""
    if sort is ProductSort.RELEVANCE:
        return [rank.desc(), col(Product.id)] if rank is not None else [col(Product.id)]
    return list(_ORDERINGS[sort])


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str, *, include_inactive: bool = False) -> Product | None:
        query = select(Product).where(
            (Product.id == key) | (Product.slug == key), col(Product.deleted_at).is_(None)
        )
        if not include_inactive:
            query = query.where(col(Product.active).is_(True))
        return (await self.session.exec(query)).first()

    # Rows by id (a search's page, a cart's lines) and a search's page in a sort's order,
    # built once with an expanding bound parameter: the ``IN`` list's coercion was a tenth
    # of a search's time in the API.
    @staticmethod
    @functools.cache
    def _by_ids_statement() -> SelectOfScalar[Product]:
        ids: BindParameter[list[str]] = bindparam("ids", expanding=True)
        return select(Product).where(col(Product.id).in_(ids))

    @staticmethod
    @functools.cache
    def _rendered_by_ids_statement() -> Select[*tuple[Any, ...]]:
        """The columns a page renders, by id: rows, not ORM objects (no identity map, no
        instance state, and not the search vector, the widest column, which no page
        shows). A fifth of a first search's database read went to the ORM's loading.
        With each product's stock (``available``, ``stock_revision``: 0 at revision 0
        without a stock row, as ``StockRepository.available_revisions`` reads it), for
        the process's stock view (``StockView.read_rows``): a page of products the view
        did not hold needed a second statement for their stock."""
        ids: BindParameter[list[str]] = bindparam("ids", expanding=True)
        table = cast_type(Table, sa_inspect(Product).local_table)
        stock = cast_type(Table, sa_inspect(StockLevel).local_table)
        rendered = [c for c in table.columns if c.name not in _NOT_RENDERED]
        return (
            Select(
                *rendered,
                func.coalesce(stock.c.on_hand - stock.c.reserved, 0).label("available"),
                func.coalesce(stock.c.revision, 0).label("stock_revision"),
            )
            .select_from(table.outerjoin(stock, stock.c.product_id == table.c.id))
            .where(col(Product.id).in_(ids))
        )

    @staticmethod
    @functools.cache
    def _page_of_statement(sort: ProductSort) -> Select[*tuple[Any, ...]]:
        return (
            ProductRepository._rendered_by_ids_statement()
            .order_by(*_order_by(sort))
            .offset(bindparam("offset", type_=Integer))
            .limit(bindparam("limit", type_=Integer))
        )

    @staticmethod
    @functools.cache
    def _listing_statements(shape: _ListingShape) -> _ListingStatements:
        """A listing's page and count statements, built once for each shape (at most 96) with
        the values as bound parameters: building them (the ``IN`` lists, the comparisons) for
        each listing cost a fifth of a filtered listing's time in the API."""
        conditions = _filters(
            bindparam("category_ids", expanding=True) if shape.category else None,
            bindparam("min_price") if shape.min_price else None,
            bindparam("max_price") if shape.max_price else None,
            shape.in_stock,
        )
        order_by = _order_by(shape.sort)
        # The page's ids first, from the listing indexes alone (they hold what filters and
        # sorts read), then those rows: a sort of 2,000 candidates reads 2,000 index entries,
        # not 2,000 rows. ``IN`` rather than a join on a subquery, whose column collection
        # SQLAlchemy built anew for every listing.
        ids = (
            select(col(Product.id))
            .where(*conditions)
            .order_by(*order_by)
            .offset(bindparam("offset", type_=Integer))
            .limit(bindparam("limit", type_=Integer))
        )
        return _ListingStatements(
            page=select(Product).where(col(Product.id).in_(ids)).order_by(*order_by),
            count=select(func.count()).select_from(Product).where(*conditions),
        )

    async def by_ids(self, ids: Sequence[str]) -> dict[str, Product]:
        """Products by id, whatever their state (a cart or order may hold any)."""
        if not ids:
            return {}
        result = await self.session.exec(self._by_ids_statement(), params={"ids": list(ids)})
        return {p.id: p for p in result.all()}

    async def rendered_by_ids(self, ids: Sequence[str]) -> dict[str, ProductDetail]:
        """What a page shows of products by id (``to_wire`` renders them), whatever their
        state, with their stock: one prepared statement through the session's asyncpg
        connection, as a product's detail is read (``ProductDetailRepository``). Through
        SQLAlchemy, a page of 20 rows cost twice a page of 4 in the API (its expanding
        ``IN`` list, its rows' attribute access in ``to_wire``: 13 against 6 us a
        product), so a search's cost grew with how full its page is, which grows with
        the catalogue (issue #15)."""
        if not ids:
            return {}
        connection = await self.session.connection()
        return await ProductDetailRepository(connection).by_ids(ids)

    async def page_of(
        self, ids: Sequence[str], sort: ProductSort, offset: int, limit: int
    ) -> list[Row[Any]]:
        """``limit`` of ``ids`` from ``offset``, in ``sort``'s order (the search index
        found them; the order and the rows are the database's), as ``rendered_by_ids``."""
        if not ids or limit <= 0:
            return []
        params = {"ids": list(ids), "offset": max(offset, 0), "limit": limit}
        result = await self.session.exec(self._page_of_statement(sort), params=params)
        return list(cast_type(Sequence[Row[Any]], result.all()))

    async def searchable(
        self, *, ids: Sequence[str] | None = None, after_id: str = "", limit: int = 5_000
    ) -> list[tuple[Product, int]]:
        """Active products with their available stock, by id: ``ids``, or the next
        ``limit`` after ``after_id`` (a full rebuild of the search index)."""
        available = col(StockLevel.on_hand) - col(StockLevel.reserved)
        statement = (
            select(Product, func.coalesce(available, 0))
            .outerjoin(StockLevel, col(StockLevel.product_id) == col(Product.id))
            .where(col(Product.active).is_(True), col(Product.deleted_at).is_(None))
            .order_by(col(Product.id))
        )
        if ids is not None:
            statement = statement.where(col(Product.id).in_(ids))
        else:
            statement = statement.where(col(Product.id) > after_id).limit(limit)
        return [(row[0], int(row[1])) for row in (await self.session.exec(statement)).all()]

    async def slug_taken(self, slug: str, *, except_id: str | None = None) -> bool:
        query = select(Product.id).where(Product.slug == slug)
        if except_id:
            query = query.where(Product.id != except_id)
        return (await self.session.exec(query)).first() is not None

    async def sku_taken(self, sku: str, *, except_id: str | None = None) -> bool:
        query = select(Product.id).where(Product.sku == sku)
        if except_id:
            query = query.where(Product.id != except_id)
        return (await self.session.exec(query)).first() is not None

    async def save(self, product: Product, *, savepoint: bool = False) -> None:
        """Insert or update, flushed now; a taken SKU or slug answers 409. ``savepoint``:
        inside one, so a refused row is dropped with it and the transaction carries on
        (to try another slug)."""
        try:
            if savepoint:
                async with self.session.begin_nested():
                    self.session.add(product)
                    await self.session.flush()
            else:
                self.session.add(product)
                await self.session.flush()
        except IntegrityError as exc:
            text = str(exc.orig)
            if "products_sku_key" in text:
                raise Conflict("that SKU is taken", code="sku_taken", field="sku") from exc
            if "products_slug_key" in text:
                raise Conflict("that slug is taken", code="slug_taken", field="slug") from exc
            raise

    async def soft_delete(self, product_id: str) -> None:
        await self.session.exec(
            update(Product)
            .where(col(Product.id) == product_id)
            .values(active=False, deleted_at=utcnow(), updated_at=utcnow())
        )

    async def after_bulk_load(self) -> None:
        """Make a bulk load searchable at full speed: move the GIN indexes' pending
        entries into the indexes proper (searches otherwise scan that list linearly until
        autovacuum gets to it) and refresh the planner's statistics."""
        for index in ("products_search_idx", "products_name_trgm_idx"):
            await self.session.exec(
                text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"),  # type: ignore[call-overload]
                params={"index": index},
            )
        await self.session.exec(text("ANALYZE products"))  # type: ignore[call-overload]

    async def insert_many(self, rows: list[dict[str, Any]]) -> int:
        """Bulk insert (one round trip per batch); rows whose SKU exists are skipped."""
        if not rows:
            return 0
        statement = (
            pg_insert(Product)
            .on_conflict_do_nothing(index_elements=["sku"])
            .returning(col(Product.id))
        )
        result = await self.session.exec(statement, params=rows)
        return len(result.all())

    async def search(
        self, query: ProductQuery, category_ids: list[str] | None, known_total: int | None = None
    ) -> SearchResult:
        """A page of ``query``. ``known_total``: the listing's count, read before (it
        depends on the filters only); a search counts its own."""
        offset = (query.page - 1) * query.limit
        if not query.search:
            # Its statements are built once per shape: nothing to build here.
            sort = query.sort or ProductSort.NEWEST
            if sort is ProductSort.RELEVANCE:
                sort = ProductSort.NEWEST
            return await self._listing(query, category_ids, sort, offset, known_total)
        conditions = listing_conditions(query, category_ids)
        tsquery = func.websearch_to_tsquery("english", query.search)
        vector = col(Product.search_vector)
        similarity = func.word_similarity(query.search, col(Product.name))
        conditions.append(
            or_(
                vector.op("@@")(tsquery),
                # name %> q is word_similarity(q, name) >= pg_trgm's threshold (0.6),
                # answered from the trigram index: partial words and small typos.
                col(Product.name).op("%>")(query.search),
            )
        )
        rank = func.ts_rank_cd(vector, tsquery, 32) + similarity
        sort = query.sort or ProductSort.RELEVANCE
        order_by = _order_by(sort, rank)
        # The first SEARCH_CANDIDATES + 1 matches, from the indexes. With a LIMIT the
        # planner prefers a sequential scan that stops early, but testing every row's
        # trigram similarity on the way costs 3-4x the bitmap scan of the two indexes.
        await self._set_seqscan(False)
        try:
            if sort is ProductSort.RELEVANCE:
                scored = (
                    await self.session.exec(
                        select(col(Product.id), rank)
                        .where(*conditions)
                        .limit(SEARCH_CANDIDATES + 1)
                    )
                ).all()
                counted = len(scored)
                # Rank the candidates only (as SQL would: rank descending, then id).
                ranked = sorted(scored[:SEARCH_CANDIDATES], key=lambda r: (-r[1], r[0]))
                ids = [r[0] for r in ranked[offset : offset + query.limit]]
                found = await self.by_ids(ids)
                rows = [found[i] for i in ids if i in found]
            else:
                matches = select(col(Product.id)).where(*conditions)
                capped = matches.limit(SEARCH_CANDIDATES + 1).subquery()
                counted = int(
                    (await self.session.exec(select(func.count()).select_from(capped))).one()
                )
                statement = select(Product).where(*conditions).order_by(*order_by)
                statement = statement.offset(offset).limit(query.limit)
                rows = list((await self.session.exec(statement)).all())
        finally:
            await self._set_seqscan(True)
        if counted > SEARCH_CANDIDATES:
            return SearchResult(rows, SEARCH_CANDIDATES, total_exact=False)
        return SearchResult(rows, counted)

    async def _listing(
        self,
        query: ProductQuery,
        category_ids: list[str] | None,
        sort: ProductSort,
        offset: int,
        known_total: int | None,
    ) -> SearchResult:
        shape = _ListingShape(
            category=category_ids is not None,
            min_price=query.min_price is not None,
            max_price=query.max_price is not None,
            in_stock=query.in_stock,
            sort=sort,
        )
        statements = self._listing_statements(shape)
        values: dict[str, Any] = {
            "category_ids": category_ids,
            "min_price": query.min_price,
            "max_price": query.max_price,
        }
        values = {name: value for name, value in values.items() if value is not None}
        page = await self.session.exec(
            statements.page, params={**values, "offset": offset, "limit": query.limit}
        )
        rows = list(page.all())
        if known_total is not None:
            return SearchResult(rows, known_total)
        count = await self.session.exec(statements.count, params=values)
        return SearchResult(rows, int(count.one()))

    async def _set_seqscan(self, enabled: bool) -> None:
        """For the rest of this transaction (``SET LOCAL``), or back to the default."""
        value = "on" if enabled else "off"
        await self.session.exec(text(f"SET LOCAL enable_seqscan = {value}"))  # type: ignore[call-overload]


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

    async def create_many(self, items: list[ProductCreate]) -> int:
        """Many products at once (seeding, imports): validated like ``create``, written in
        one bulk statement. Products whose SKU exists already are skipped; slugs are
        made unique by suffixing the SKU. Returns how many were added."""
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
