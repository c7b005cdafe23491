"""The search index against the PostgreSQL path, on real tantivy and real PostgreSQL: the
same pages for the same queries, and a full rebuild equal to incremental upkeep. In one
rolled-back transaction each (``db_sessions``)."""

from __future__ import annotations

import json
import random
import string
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import tantivy
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from models.catalog import CategoryCreate, ProductCreate, ProductUpdate, ReviewCreate
from models.users import Role, User, UserStatus
from services.catalog.categories import CategoryService
from services.catalog.indexing import SearchIndexing
from services.catalog.product_query import (
    SEARCH_CANDIDATES,
    ProductQuery,
    ProductSort,
    SearchResult,
)
from services.catalog.products import ProductSearch, ProductService
from services.catalog.reviews import NoPurchases, ReviewService
from services.catalog.search import IndexedSearch, SearchEngines, text_query
from services.catalog.search_index import (
    MARKER,
    SCHEMA_VERSION,
    SearchIndexWriter,
    read_marker,
)
from services.catalog.stock_view import StockView
from services.inventory import StockRepository, StockService
from tests.factories import unique_email


def _word() -> str:
    """A word no other test's products contain."""
    return "".join(random.choices(string.ascii_lowercase, k=12))


@pytest.fixture
def indexing(tmp_path: Path) -> SearchIndexing:
    return SearchIndexing(SearchIndexWriter(tmp_path / "search-index"))


def _engine(indexing: SearchIndexing) -> ProductSearch:
    engine = SearchEngines(indexing.writer.path).current()
    assert isinstance(engine, IndexedSearch), "the index is built and ready"
    return engine


async def _search(
    session: AsyncSession, engine: ProductSearch | None, **query: Any
) -> SearchResult:
    service = ProductService(session)
    if engine is None:
        return await service.search(ProductQuery(**query))
    return await service.search(ProductQuery(**query), engine=engine)


async def _small_catalogue(session: AsyncSession, word: str) -> dict[str, str]:
    """A tree of two categories and a dozen products named with ``word``, some in stock,
    some rated, one inactive, one deleted."""
    categories = CategoryService(session)
    root = await categories.create(CategoryCreate(name=f"{word} root", slug=f"{word}-root"))
    leaf = await categories.create(
        CategoryCreate(name=f"{word} leaf", slug=f"{word}-leaf", parent_id=root.id)
    )
    products = ProductService(session)
    stock = StockService(session)
    names = [
        ("Wireless Headphones", "Over-ear, noise cancelling."),
        ("Studio Headphones", "Closed back, for mixing."),
        ("Bluetooth Speaker", "Wireless and waterproof."),
        ("Wool Scarf", "Warm merino wool."),
        ("Woollen Socks", "Three pairs."),
        ("Running Shoes", "Light and fast."),
        ("Runner's Cap", "Breathable."),
        ("Ceramic Teapot", "Holds one litre."),
        ("Wireless Charger", "Fast charging pad."),
        ("Headphone Stand", "Walnut."),
        ("Leather Wallet", "Fits eight cards."),
        ("Sticker Pack", "Fifty stickers."),
    ]
    ids: dict[str, str] = {}
    for n, (name, description) in enumerate(names):
        product = await products.create(
            ProductCreate(
                sku=f"{word}-{n}",
                name=name,
                description=description,
                price=1000 + (n % 5) * 250,  # ties on price, broken by id
                currency="USD",
                category_id=leaf.id if n % 2 else root.id,
            )
        )
        ids[name] = product.id
        if n % 3 == 0:
            await stock.adjust(product.id, 5, "initial count")
    user = User(
        email=unique_email("reviewer"),
        name="Reviewer",
        password_hash="unusable",
        role=Role.CUSTOMER,
        status=UserStatus.ACTIVE,
    )
    session.add(user)
    await session.flush()
    user_id = user.id
    reviews = ReviewService(session, NoPurchases())
    for name, rating in (("Wool Scarf", 5), ("Wireless Charger", 3), ("Sticker Pack", 5)):
        await reviews.create(ids[name], user_id, ReviewCreate(rating=rating, title="t", body="b"))
    await products.update(ids["Leather Wallet"], ProductUpdate(active=False))
    await products.delete(ids["Ceramic Teapot"])
    ids["root"], ids["leaf"] = root.id, leaf.id
    return ids


async def test_the_index_answers_as_postgres_does(
    db_session: AsyncSession, db_sessions: SessionFactory, indexing: SearchIndexing
) -> None:
    word = _word()
    ids = await _small_catalogue(db_session, word)
    await indexing.rebuild(db_sessions)
    engine = _engine(indexing)
    # Scoped to this test's categories (the database holds other tests' products).
    root, leaf = ids["root"], ids["leaf"]
    queries: list[dict[str, Any]] = [
        {"search": "wireless", "category": root},
        {"search": "headphones", "category": root},
        {"search": "wireless headphones", "category": root},
        {"search": "headphones", "category": leaf},
        {"search": "wool", "category": root},
        {"search": "warm wool", "category": root},
        {"search": "running", "category": root},
        {"search": "fast", "category": root, "min_price": 1200, "max_price": 1800},
        {"search": "headphones", "category": root, "in_stock": True},
        {"search": "headphones", "category": root, "in_stock": False},
        {"search": "teapot", "category": root},  # deleted
        {"search": "wallet", "category": root},  # inactive
        {"search": "the and of", "category": root},  # stop words only
        {"search": "wireless", "category": f"{word}-missing"},
    ]
    for sort in ProductSort:
        queries += [
            {"search": term, "category": root, "sort": sort, "limit": 2, "page": page}
            for term in ("wireless", "headphones")
            for page in (1, 2, 3)
        ]
    for query in queries:
        expected = await _search(db_session, None, **query)
        got = await _search(db_session, engine, **query)
        assert (got.total, got.total_exact) == (expected.total, expected.total_exact), query
        if query.get("sort", ProductSort.RELEVANCE) is ProductSort.RELEVANCE:
            # BM25 and ts_rank_cd order differently: the same products, not the same order
            # (unless they all fit on the page).
            if expected.total <= query.get("limit", 20):
                assert {p.id for p in got.rows} == {p.id for p in expected.rows}, query
        else:
            assert [p.id for p in got.rows] == [p.id for p in expected.rows], query
    # Typos and cut-off words, as the trigram similarity finds them: one edit away from a
    # name word as written (not from its stem: "headphones" is indexed as "headphon", two
    # edits from "hedphones"), or its beginning.
    typos = (
        ("wireles", "Wireless Headphones"),
        ("headphon", "Studio Headphones"),
        ("hedphones", "Studio Headphones"),
        ("headphoens", "Wireless Headphones"),
        ("chargr", "Wireless Charger"),
        ("runing shoes", "Running Shoes"),
    )
    for typed, name in typos:
        for searched_by in (engine, None):
            found = await _search(db_session, searched_by, search=typed, category=root)
            assert ids[name] in {p.id for p in found.rows}, (typed, searched_by)
    # A name match outranks a description match.
    ranked = await _search(db_session, engine, search="wireless", category=root)
    assert ranked.rows[-1].id == ids["Bluetooth Speaker"]


async def test_an_index_search_reads_its_page_with_the_stock_the_view_keeps(
    db_session: AsyncSession, db_sessions: SessionFactory, indexing: SearchIndexing
) -> None:
    """An index search's rows carry each product's stock as the stock read gives it (0 at
    revision 0 without a stock row), by relevance and by a sort; kept by a live stock
    view, the page's availability is then shown with no stock read of its own."""
    word = _word()
    ids = await _small_catalogue(db_session, word)
    await indexing.rebuild(db_sessions)
    engine = _engine(indexing)
    stock = StockRepository(db_session)
    for sort in (None, ProductSort.PRICE_ASC):
        found = await _search(
            db_session, engine, search="headphones", category=ids["root"], sort=sort
        )
        rows: list[Any] = list(found.rows)  # rows with the stock, not ``Product``s
        shown = [row.id for row in rows]
        assert len(shown) == 3, shown
        expected = await stock.available_revisions(shown)
        assert {row.id: (row.available, row.stock_revision) for row in rows} == expected
        assert {available for available, _ in expected.values()} == {0, 5}  # with and without a row

        view = StockView()
        view.listening()
        view.read_rows(view.reading(), found.rows)
        reads = view.reads
        assert await view.available(db_session, shown) == {p: a for p, (a, _) in expected.items()}
        assert view.reads == reads  # nothing read again


async def test_past_the_cap_the_index_reports_a_lower_bound_and_sorts_every_match(
    db_session: AsyncSession, db_sessions: SessionFactory, indexing: SearchIndexing
) -> None:
    word = _word()
    items = [
        ProductCreate(sku=f"{word}-{i}", name=f"{word} thing {i}", price=100 + i, currency="USD")
        for i in range(SEARCH_CANDIDATES + 5)
    ]
    assert len(await ProductService(db_session).create_many(items)) == len(items)
    await indexing.rebuild(db_sessions)
    engine = _engine(indexing)

    first = await _search(db_session, engine, search=word, limit=20)
    assert (first.total, first.total_exact, len(first.rows)) == (SEARCH_CANDIDATES, False, 20)
    last_page = SEARCH_CANDIDATES // 20
    assert len((await _search(db_session, engine, search=word, page=last_page)).rows) == 20
    assert (await _search(db_session, engine, search=word, page=last_page + 1)).rows == []
    # Another order sorts every match (the bulk load gave them all one created_at, so
    # newest-first is all ties, broken by id as SQL does).
    for sort in (ProductSort.PRICE_ASC, ProductSort.PRICE_DESC, ProductSort.NEWEST):
        for page in (1, last_page + 1):
            query = {"search": word, "sort": sort, "limit": 20, "page": page}
            expected = await _search(db_session, None, **query)
            got = await _search(db_session, engine, **query)
            assert [p.id for p in got.rows] == [p.id for p in expected.rows], query
    cheapest = await _search(
        db_session, engine, search=word, sort=ProductSort.PRICE_ASC, page=last_page + 1
    )
    assert [p.price for p in cheapest.rows] == list(range(1100, 1105))
    # Equal relevance: ties broken by id, as the SQL order does.
    within = await _search(db_session, engine, search=f"{word} thing 7", limit=100)
    assert within.rows[0].name == f"{word} thing 7"


async def test_every_page_ranks_as_a_full_ranking_of_the_candidates_does(
    db_session: AsyncSession, db_sessions: SessionFactory, indexing: SearchIndexing
) -> None:
    """Pages cut from long runs of equal scores, up to and past the candidates' end, are
    those of a plain ranking of the candidates (the index's best ``SEARCH_CANDIDATES``,
    by score, then id), with the same total: the page's run of ties is found by
    bisection, not a pass over the candidates."""
    word = _word()
    items = [
        ProductCreate(
            sku=f"{word}-{i}",
            # Three runs of equal scores: the word in the name and the description, in
            # the name twice, in the name once (most of them, past the candidates' end).
            name=f"{word} {word} thing" if i % 50 == 1 else f"{word} thing",
            description=word if i % 40 == 0 else "",
            price=100 + i,
            currency="USD",
        )
        for i in range(SEARCH_CANDIDATES + 30)
    ]
    assert len(await ProductService(db_session).create_many(items)) == len(items)
    await indexing.rebuild(db_sessions)
    # Some documents written again, as the relay does: they move to a segment of their
    # own, so the index's order of equal scores (by address) is no longer by id.
    listed = await _search(db_session, _engine(indexing), search=word, limit=100, page=4)
    assert await indexing.refresh(db_session, [p.id for p in listed.rows][::3])
    engine = _engine(indexing)
    assert isinstance(engine, IndexedSearch)
    snapshot = engine.snapshot
    wanted = text_query(snapshot.schema, word)
    assert wanted is not None
    found = snapshot.searcher.search(wanted, SEARCH_CANDIDATES + 1, count=False).hits
    assert len({score for score, _ in found}) == 3
    candidates = sorted(
        (-score, snapshot.product_id(address)) for score, address in found[:SEARCH_CANDIDATES]
    )
    ranked = [product_id for _, product_id in candidates]
    for limit in (20, 7, 100):
        last = -(-SEARCH_CANDIDATES // limit)
        for page in [*range(1, 6), last - 1, last, last + 1]:
            got = await _search(db_session, engine, search=word, limit=limit, page=page)
            expected = ranked[(page - 1) * limit : page * limit]
            assert [p.id for p in got.rows] == expected, (limit, page)
            assert (got.total, got.total_exact) == (SEARCH_CANDIDATES, False)


class _CountingSearcher:
    """A searcher that records each document it reads."""

    def __init__(self, searcher: tantivy.Searcher) -> None:
        self.searcher = searcher
        self.reads: list[tuple[int, int]] = []

    def doc(self, address: tantivy.DocAddress) -> tantivy.Document:
        self.reads.append((address.segment_ord, address.doc))
        return self.searcher.doc(address)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.searcher, name)


async def test_a_snapshot_reads_each_documents_id_once(
    db_session: AsyncSession, db_sessions: SessionFactory, indexing: SearchIndexing
) -> None:
    """Ranking a page reads the id of every hit that ties with it; a snapshot keeps the
    ids it read (its documents' addresses never change), so the next search reads none
    of them again, and answers as a snapshot that kept nothing."""
    word = _word()
    items = [
        ProductCreate(sku=f"{word}-{i}", name=f"{word} thing", price=100 + i, currency="USD")
        for i in range(30)
    ]
    assert len(await ProductService(db_session).create_many(items)) == len(items)
    await indexing.rebuild(db_sessions)
    engine = _engine(indexing)
    assert isinstance(engine, IndexedSearch)
    searcher = _CountingSearcher(engine.snapshot.searcher)
    counting = IndexedSearch(replace(engine.snapshot, searcher=cast(tantivy.Searcher, searcher)))

    first = await _search(db_session, counting, search=word, limit=10, page=2)
    assert len(searcher.reads) == 30  # all 30 tie: each id read, once
    assert len(set(searcher.reads)) == 30
    again = await _search(db_session, counting, search=word, limit=10, page=2)
    assert len(searcher.reads) == 30  # none read again
    fresh = await _search(db_session, _engine(indexing), search=word, limit=10, page=2)
    ids = [p.id for p in fresh.rows]
    assert [p.id for p in first.rows] == [p.id for p in again.rows] == ids
    assert ids == sorted(p.id for p in fresh.rows)  # ties broken by id


async def _answers(session: AsyncSession, engine: ProductSearch, root: str) -> list[Any]:
    answers = []
    for sort in ProductSort:
        for term in ("headphones", "wireless", "scarf", "shoes"):
            for in_stock in (None, True):
                query = {"search": term, "category": root, "in_stock": in_stock, "sort": sort}
                found = await _search(session, engine, limit=100, **query)
                answers.append((query, found.total, [p.id for p in found.rows]))
    return answers


async def test_a_rebuild_equals_incremental_upkeep(
    db_session: AsyncSession, db_sessions: SessionFactory, tmp_path: Path
) -> None:
    word = _word()
    incremental = SearchIndexing(SearchIndexWriter(tmp_path / "incremental"))
    await incremental.rebuild(db_sessions)  # before the products: they arrive one by one
    ids = await _small_catalogue(db_session, word)
    products = ProductService(db_session)
    await products.update(ids["Wool Scarf"], ProductUpdate(name="Cashmere Scarf"))
    await products.update(ids["Running Shoes"], ProductUpdate(price=99))
    await StockService(db_session).adjust(ids["Wireless Headphones"], -5, "sold")
    for product_id in ids.values():
        assert await incremental.refresh(db_session, [product_id]) is True
    # Redelivered, and out of order: the document follows the row, so nothing changes.
    for product_id in reversed(list(ids.values())):
        await incremental.refresh(db_session, [product_id])

    rebuilt = SearchIndexing(SearchIndexWriter(tmp_path / "rebuilt"))
    await rebuilt.rebuild(db_sessions)
    root = ids["root"]
    answers = await _answers(db_session, _engine(incremental), root)
    assert answers == await _answers(db_session, _engine(rebuilt), root)
    assert sum(len(found) for _, _, found in answers) > 40
    engine = _engine(incremental)
    renamed = await _search(db_session, engine, search="cashmere", category=root)
    assert [p.id for p in renamed.rows] == [ids["Wool Scarf"]]
    cheap = await _search(db_session, engine, search="shoes", category=root, max_price=99)
    assert [p.id for p in cheap.rows] == [ids["Running Shoes"]]
    in_stock = await _search(db_session, engine, search="headphones", category=root, in_stock=True)
    assert ids["Wireless Headphones"] not in {p.id for p in in_stock.rows}


async def test_a_change_before_the_index_is_built_waits_for_the_build(
    db_session: AsyncSession, tmp_path: Path
) -> None:
    indexing = SearchIndexing(SearchIndexWriter(tmp_path / "never-built"))
    word = _word()
    product = await ProductService(db_session).create(
        ProductCreate(sku=word, name=word, price=100, currency="USD")
    )
    assert await indexing.refresh(db_session, [product.id]) is False
    assert SearchEngines(indexing.writer.path).current().name == "postgres"


async def test_a_worker_start_builds_a_missing_or_outdated_index_once(
    db_sessions: SessionFactory, tmp_path: Path
) -> None:
    writer = SearchIndexWriter(tmp_path / "search-index")
    indexing = SearchIndexing(writer)
    await indexing.ensure_built(db_sessions)
    built = read_marker(writer.path)
    assert built is not None
    await indexing.ensure_built(db_sessions)  # ready: left alone
    assert read_marker(writer.path) == built
    # Another schema version (this code's changed): rebuilt.
    marker = writer.path / MARKER
    marker.write_text(json.dumps(built | {"schemaVersion": SCHEMA_VERSION - 1}))
    assert SearchEngines(writer.path).current().name == "postgres"
    await indexing.ensure_built(db_sessions)
    rebuilt = read_marker(writer.path)
    assert rebuilt is not None
    assert rebuilt["build"] != built["build"]
