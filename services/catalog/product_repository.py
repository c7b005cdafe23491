"""The products' SQL: by id or slug, a listing's page and count, a search in PostgreSQL,
staff writes and bulk loads."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    BindParameter,
    Integer,
    Row,
    Table,
    bindparam,
    func,
    or_,
    text,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

from core.errors import Conflict
from models.base import utcnow
from models.catalog import Product
from models.inventory import StockLevel
from services.catalog.detail import ProductDetail, ProductDetailRepository
from services.catalog.listing import listing_conditions, listing_filters, sort_order
from services.catalog.product_query import (
    SEARCH_CANDIDATES,
    ProductQuery,
    ProductSort,
    SearchResult,
)

# Columns no page shows (``to_wire``).
NOT_RENDERED = frozenset({"search_vector", "deleted_at"})


@dataclass(frozen=True)
class ListingShape:
    """Which filters a listing has (not their values) and its order."""

    category: bool
    min_price: bool
    max_price: bool
    in_stock: bool | None
    sort: ProductSort


@dataclass(frozen=True)
class ListingStatements:
    page: SelectOfScalar[Product]
    count: SelectOfScalar[int]


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
        rendered = [c for c in table.columns if c.name not in NOT_RENDERED]
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
            .order_by(*sort_order(sort))
            .offset(bindparam("offset", type_=Integer))
            .limit(bindparam("limit", type_=Integer))
        )

    @staticmethod
    @functools.cache
    def _listing_statements(shape: ListingShape) -> ListingStatements:
        """A listing's page and count statements, built once for each shape (at most 96) with
        the values as bound parameters: building them (the ``IN`` lists, the comparisons) for
        each listing cost a fifth of a filtered listing's time in the API."""
        conditions = listing_filters(
            bindparam("category_ids", expanding=True) if shape.category else None,
            bindparam("min_price") if shape.min_price else None,
            bindparam("max_price") if shape.max_price else None,
            shape.in_stock,
        )
        order_by = sort_order(shape.sort)
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
        return ListingStatements(
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

    async def insert_many(self, rows: list[dict[str, Any]]) -> dict[str, str]:
        """Bulk insert (one round trip per batch); rows whose SKU exists are skipped.
        SKU → id of those added."""
        if not rows:
            return {}
        statement = (
            pg_insert(Product)
            .on_conflict_do_nothing(index_elements=["sku"])
            .returning(col(Product.sku), col(Product.id))
        )
        result = await self.session.exec(statement, params=rows)
        return {str(sku): str(product_id) for sku, product_id in result.all()}

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
        order_by = sort_order(sort, rank)
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
        shape = ListingShape(
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
