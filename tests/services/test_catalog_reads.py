"""Catalogue reads at scale: a search's capped count and ranking, and the per-process
price book. In one rolled-back transaction each (``db_sessions``)."""

from __future__ import annotations

import asyncio
import gc
import random
import string
from datetime import datetime, timedelta
from typing import cast

import orjson
from redis.asyncio import Redis
from sqlalchemy import func, text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.catalog import Product, ProductCreate
from models.pricing import DiscountCreate, DiscountKind
from services.catalog.cache import CatalogCache, LocalEntries
from services.catalog.discounts import DiscountService
from services.catalog.listing import listing_conditions
from services.catalog.pricing import PriceBook, PriceBookCache, price_book
from services.catalog.product_query import SEARCH_CANDIDATES, ProductQuery, ProductSort
from services.catalog.product_repository import ProductRepository
from services.catalog.products import ProductService
from services.catalog.rendering import to_public, to_wire


def _word() -> str:
    """A word no other test's products contain."""
    return "".join(random.choices(string.ascii_lowercase, k=14))


async def _products(session: AsyncSession, word: str, n: int) -> None:
    tag = word[:6].upper()
    items = [
        ProductCreate(sku=f"{tag}-{i}", name=f"{word} thing {i}", price=100 + i, currency="USD")
        for i in range(n)
    ]
    assert len(await ProductService(session).create_many(items)) == n


async def test_a_search_past_the_cap_reports_a_lower_bound(db_session: AsyncSession) -> None:
    word = _word()
    await _products(db_session, word, SEARCH_CANDIDATES + 5)
    service = ProductService(db_session)

    first = await service.search(ProductQuery(search=word, limit=20))
    assert (first.total, first.total_exact) == (SEARCH_CANDIDATES, False)
    assert len(first.rows) == 20
    assert all(word in p.name for p in first.rows)

    # Relevance-ranked pages run to the candidates' end, and no further.
    last_page = SEARCH_CANDIDATES // 20
    last = await service.search(ProductQuery(search=word, limit=20, page=last_page))
    assert len(last.rows) == 20
    beyond = await service.search(ProductQuery(search=word, limit=20, page=last_page + 1))
    assert beyond.rows == []

    # Another order sorts every match: the cheapest of all, past the candidates too.
    cheapest = await service.search(
        ProductQuery(search=word, sort=ProductSort.PRICE_ASC, limit=20, page=last_page + 1)
    )
    assert [p.price for p in cheapest.rows] == list(range(1100, 1105))
    assert cheapest.total_exact is False


async def test_a_search_within_the_cap_counts_exactly_and_ranks_all(
    db_session: AsyncSession,
) -> None:
    word = _word()
    await _products(db_session, word, 30)
    service = ProductService(db_session)
    result = await service.search(ProductQuery(search=word, limit=100))
    assert (result.total, result.total_exact, len(result.rows)) == (30, True, 30)
    # Ties in relevance are broken by id, as the SQL order did.
    assert [p.id for p in result.rows] == sorted(p.id for p in result.rows)
    page_two = await service.search(ProductQuery(search=word, limit=20, page=2))
    assert [p.id for p in page_two.rows] == [p.id for p in result.rows[20:]]


async def test_listings_count_exactly(db_session: AsyncSession) -> None:
    word = _word()
    await _products(db_session, word, 3)
    listing = await ProductService(db_session).search(ProductQuery(limit=1))
    assert listing.total_exact is True
    assert listing.total >= 3
    told = await ProductService(db_session).search(ProductQuery(limit=1), known_total=7)
    assert told.total == 7  # a cached count is used as it is


async def test_a_filtered_listing_can_be_read_from_the_listing_index(
    db_session: AsyncSession,
) -> None:
    """The listing filters imply the partial listing index's predicate (``active AND
    deleted_at IS NULL``): written ``active IS true``, PostgreSQL could not use that index,
    and a category and price band read every matching row through two other indexes."""
    query = ProductQuery(category="any", min_price=1_000, max_price=5_000)
    count = (
        select(func.count())
        .select_from(Product)
        .where(*listing_conditions(query, ["cat_a", "cat_b"]))
    )
    dialect = db_session.get_bind().dialect
    sql = count.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    # On the small test catalogue any plan is cheap, and which index wins depends on the
    # statistics: leave the planner only index scans and, inside this rolled-back
    # transaction, only the listing indexes (and those behind constraints, which do not
    # match). If the filters did not imply their predicate, only a scan of every row
    # would be left.
    others = await db_session.exec(  # type: ignore[call-overload]
        text(
            "SELECT i.indexrelid::regclass::text FROM pg_index i"
            " WHERE i.indrelid = 'products'::regclass"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
            " AND i.indexrelid::regclass::text NOT LIKE 'products_listing_%'"
        )
    )
    for (index,) in others.all():
        await db_session.exec(text(f'DROP INDEX "{index}"'))  # type: ignore[call-overload]
    for setting in ("enable_seqscan", "enable_bitmapscan"):
        await db_session.exec(text(f"SET LOCAL {setting} = off"))  # type: ignore[call-overload]
    plan = (await db_session.exec(text(f"EXPLAIN {sql}"))).all()  # type: ignore[call-overload]
    lines = [row[0] for row in plan]
    # Which of the two listing indexes depends on the test database's statistics.
    assert any("using products_listing_" in line for line in lines), lines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _discount(session: AsyncSession, product_id: str, amount: int) -> None:
    await DiscountService(session).create(
        DiscountCreate(
            name="test",
            kind=DiscountKind.FIXED,
            amount=amount,
            product_id=product_id,
            starts_at=utcnow() - timedelta(minutes=1),
        )
    )


async def test_the_price_book_is_reused_per_version_for_a_second(
    db_session: AsyncSession,
) -> None:
    word = _word()
    await _products(db_session, word, 1)
    product = (await ProductService(db_session).search(ProductQuery(search=word))).rows[0]
    clock = Clock()
    cache = PriceBookCache(seconds=1.0, clock=clock)
    assert (await cache.get(db_session, "v1")).effective_price(product) == 100

    await _discount(db_session, product.id, 30)
    # Same version, within the second: the book read before (a write bumps the version).
    assert (await cache.get(db_session, "v1")).effective_price(product) == 100
    # A new version (the write committed and bumped it): read again.
    assert (await cache.get(db_session, "v2")).effective_price(product) == 70
    # The book outlives the request's session: the rows it read are expired and gone.
    product_id = product.id
    db_session.expire_all()
    db_session.expunge_all()
    product = await ProductService(db_session).get(product_id)
    assert (await cache.get(db_session, "v2")).effective_price(product) == 70

    await _discount(db_session, product.id, 50)
    clock.now += 1.01  # the second is over, even under the same version
    assert (await cache.get(db_session, "v2")).effective_price(product) == 50

    await _discount(db_session, product.id, 60)
    # No version (Redis unavailable): never reused.
    assert (await cache.get(db_session, None)).effective_price(product) == 40


async def test_requests_that_find_the_price_book_out_of_date_read_it_once(
    db_session: AsyncSession,
) -> None:
    """Many requests at once under a new version: one reads the book, the others wait
    for it and take it (no herd of reads each time the book runs out)."""
    word = _word()
    await _products(db_session, word, 1)
    product = (await ProductService(db_session).search(ProductQuery(search=word))).rows[0]
    reads: list[datetime] = []

    async def read(session: AsyncSession, at: datetime) -> PriceBook:
        reads.append(at)
        await asyncio.sleep(0.05)  # the others arrive while it reads
        return await price_book(session, at)

    clock = Clock()
    cache = PriceBookCache(seconds=1.0, clock=clock, read=read)
    books = await asyncio.gather(*(cache.get(db_session, "v1") for _ in range(10)))
    assert len(reads) == 1
    assert {book.effective_price(product) for book in books} == {100}

    await _discount(db_session, product.id, 30)
    books = await asyncio.gather(*(cache.get(db_session, "v2") for _ in range(10)))
    assert len(reads) == 2  # a new version: read once more, by one of them
    assert {book.effective_price(product) for book in books} == {70}
    # Without a version (Redis unavailable) nothing is shared: each reads its own.
    for _ in range(3):
        await cache.get(db_session, None)
    assert len(reads) == 5


async def test_the_price_book_is_not_reused_past_a_discount_window_edge(
    db_session: AsyncSession,
) -> None:
    word = _word()
    await _products(db_session, word, 1)
    product = (await ProductService(db_session).search(ProductQuery(search=word))).rows[0]
    start = utcnow()
    await DiscountService(db_session).create(
        DiscountCreate(
            name="a short sale",
            kind=DiscountKind.FIXED,
            amount=30,
            product_id=product.id,
            starts_at=start - timedelta(minutes=1),
            ends_at=start + timedelta(minutes=10),
        )
    )
    now = start
    cache = PriceBookCache(seconds=3600.0, now=lambda: now)
    assert (await cache.get(db_session, "v1")).effective_price(product) == 70
    now = start + timedelta(minutes=5)
    assert (await cache.get(db_session, "v1")).effective_price(product) == 70
    # The sale ended: the book read before it did is not used, whatever its lifetime.
    now = start + timedelta(minutes=10, seconds=1)
    assert (await cache.get(db_session, "v1")).effective_price(product) == 100


def test_a_process_copy_holds_the_current_version_only() -> None:
    clock = Clock()
    local = LocalEntries(max_entries=2, clock=clock)
    local.put("5", "a", b'{"price":100}', ttl_seconds=10)
    assert local.get("5", "a") == {"price": 100}
    assert local.get("6", "a") is None  # another version never reads it
    local.put("6", "b", b'{"price":120}', ttl_seconds=10)
    assert local.get("5", "a") is None  # a new version emptied the copy
    assert local.get("6", "b") == {"price": 120}
    local.put("6", "c", b"1", ttl_seconds=10)
    local.put("6", "d", b"2", ttl_seconds=10)  # over the size: the oldest entry goes
    assert (local.get("6", "b"), local.get("6", "c"), local.get("6", "d")) == (None, 1, 2)
    clock.now += 10
    assert local.get("6", "c") is None  # expired
    local.put("6", "e", b"3", ttl_seconds=0)  # not to be cached (a discount window's edge)
    assert local.get("6", "e") is None


def test_a_process_copy_gives_each_reader_its_own_and_leaves_the_collector_nothing() -> None:
    """Entries are kept encoded: a reader that changes what it got changes no other
    reader's, and a full page adds no container for the garbage collector's full passes
    to walk (decoded, the 4,096 pages of a busy process were ~137,000)."""
    local = LocalEntries()
    cache = CatalogCache(cast(Redis, None), local=local)
    page = {"items": [{"id": f"prod_{n}", "rating": {"histogram": {"1": 0}}} for n in range(20)]}
    cache.put_local("7", "page", {"p": 1}, page)
    [(_, raw)] = local._entries.values()
    assert isinstance(raw, bytes)
    assert not gc.is_tracked(raw)
    first = cache.get_local("7", "page", {"p": 1})
    assert first == page
    first["items"].clear()
    assert cache.get_local("7", "page", {"p": 1}) == page


async def test_an_entry_copied_from_redis_expires_with_the_redis_entry(redis: Redis) -> None:
    """A process that copies an entry another process stored keeps it no longer than
    Redis does (a discount window's edge), and a version bump is seen by both."""
    version = _word()  # a version no other test uses
    clock = Clock()
    writer = CatalogCache(redis, local=LocalEntries())
    reader_copy = LocalEntries(clock=clock)
    reader = CatalogCache(redis, local=reader_copy)
    await writer.put(version, "product", {"key": "p"}, {"price": 5}, ttl_seconds=3)
    assert await reader.get(version, "product", {"key": "p"}) == {"price": 5}
    await redis.delete(CatalogCache._key(version, "product", {"key": "p"}))
    assert await reader.get(version, "product", {"key": "p"}) == {"price": 5}  # its copy
    clock.now += 3
    assert await reader.get(version, "product", {"key": "p"}) is None  # gone with Redis's


async def test_entries_are_read_and_written_together(redis: Redis) -> None:
    """A listing that is not in the process's copy asks for its page, total and subtree
    at once (``get_many``) and writes what it read the same way (``put_many``): each
    entry keeps its own lifetime, one not to be cached is not, and what came from Redis
    is copied with the Redis entry's expiry."""
    version = _word()
    clock = Clock()
    writer = CatalogCache(redis, local=LocalEntries())
    await writer.put_many(
        version,
        [
            ("page", {"p": 1}, {"items": []}, 30),
            ("count", {"c": 1}, 0, None),
            ("page", {"p": 2}, {"items": [1]}, 0),  # a discount window's edge: not cached
        ],
    )
    assert 25 < await redis.ttl(CatalogCache._key(version, "page", {"p": 1})) <= 30
    assert 55 < await redis.ttl(CatalogCache._key(version, "count", {"c": 1})) <= 60
    assert not await redis.exists(CatalogCache._key(version, "page", {"p": 2}))
    reader_copy = LocalEntries(clock=clock)
    reader = CatalogCache(redis, local=reader_copy)
    reader_copy.put(version, CatalogCache._key(version, "subtree", {"s": 1}), b'["c1"]', 60)
    wanted = [("page", {"p": 1}), ("count", {"c": 1}), ("subtree", {"s": 1}), ("page", {"p": 2})]
    assert await reader.get_many(version, wanted) == [{"items": []}, 0, ["c1"], None]
    assert reader.get_local(version, "count", {"c": 1}) == 0  # copied
    clock.now += 31
    assert reader.get_local(version, "page", {"p": 1}) is None  # with the Redis entry's life
    assert reader.get_local(version, "count", {"c": 1}) == 0
    assert await reader.get_many(None, wanted) == [None] * 4  # Redis unavailable: no cache


async def test_the_wire_dict_is_what_the_public_model_dumps(db_session: AsyncSession) -> None:
    """Listings and detail build their JSON without pydantic (``to_wire``); the documented
    model (``ProductPublic``) must dump the very same."""
    word = _word()
    await _products(db_session, word, 2)
    first, second = (await ProductService(db_session).search(ProductQuery(search=word))).rows
    assert isinstance(first, Product)
    assert isinstance(second, Product)
    first.images = ["https://img.example/a.png"]
    first.attributes = {"colour": "red", "sizes": [1, 2]}
    first.rating_count, first.rating_sum, first.rating_4, first.rating_5 = 3, 14, 1, 2
    first.compare_at_price = 999
    second.created_at = second.created_at.replace(microsecond=0)  # no fraction on the wire
    await _discount(db_session, second.id, 30)
    book = await PriceBookCache().get(db_session, None)
    for product in (first, second):
        for available in (0, 5):
            dumped = to_public(product, book, available).model_dump(mode="json", by_alias=True)
            assert to_wire(product, book, available) == dumped
    assert to_wire(second, book)["effectivePrice"] == second.price - 30


async def test_a_search_pages_rows_render_as_its_products_do(db_session: AsyncSession) -> None:
    """The search index's page is read as rows of the rendered columns, not ORM objects
    (``rendered_by_ids``, ``page_of``): each renders to the very dict its product does."""
    word = _word()
    await _products(db_session, word, 3)
    found = await ProductService(db_session).search(ProductQuery(search=word))
    products = [p for p in found.rows if isinstance(p, Product)]
    assert len(products) == 3
    first, second, third = products
    first.images = ["https://img.example/a.png"]
    first.attributes = {"colour": "red", "sizes": [1, 2], "note": None}
    first.rating_count, first.rating_sum, first.rating_4, first.rating_5 = 3, 14, 1, 2
    first.compare_at_price = 999
    second.description = "Ünïcode, “quotes” and a\nnewline"
    second.active = False
    await _discount(db_session, third.id, 30)
    await db_session.flush()
    book = await PriceBookCache().get(db_session, None)
    ids = [p.id for p in products]
    repository = ProductRepository(db_session)
    rows = await repository.rendered_by_ids([*ids, "prod_none"])
    assert sorted(rows) == sorted(ids)
    by_price = await repository.page_of(ids, ProductSort.PRICE_DESC, 0, 3)
    assert [row.id for row in by_price] == [p.id for p in sorted(products, key=lambda p: -p.price)]
    db_session.expunge_all()
    loaded = await repository.by_ids(ids)  # the products as the ORM reads them back
    for product_id in ids:
        wire = to_wire(loaded[product_id], book, 4)
        assert orjson.dumps(to_wire(rows[product_id], book, 4)) == orjson.dumps(wire)
    assert to_wire(rows[first.id], book)["attributes"] == first.attributes
    assert to_wire(rows[third.id], book)["effectivePrice"] == third.price - 30
