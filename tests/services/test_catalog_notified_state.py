"""``StockView``, ``CatalogVersion`` and ``Answers``: what a process answers from what it
was told.

The listener's calls (``listening``, ``notified``, ``lost``) are made here directly, as
``ChannelListener`` makes them (tests/api/test_catalog_notified.py runs them through the
real connection and triggers); the stock is read from the real database, the version
from the real Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from models.catalog import ProductCreate
from services.catalog.answers import Answer, Answers
from services.catalog.cache import VERSION_KEY
from services.catalog.products import ProductService
from services.catalog.stock_view import StockView
from services.catalog.versions import CatalogVersion
from services.inventory import StockRepository
from services.inventory.stock import StockService
from tests.api.test_order_long_poll import until
from tests.factories import unique_slug
from tests.services.test_catalog_reads import Clock


async def _stocked(session: AsyncSession, units: int) -> tuple[str, int]:
    """A product with ``units`` in stock: its id and its stock row's revision."""
    product = await ProductService(session).create(
        ProductCreate(sku=unique_slug("sku"), name="Lamp", price=100, currency="USD")
    )
    await StockService(session).adjust(product.id, units, "delivery")
    [(available, revision)] = (
        await StockRepository(session).available_revisions([product.id])
    ).values()
    assert available == units
    return product.id, revision


async def test_the_view_keeps_nothing_until_it_listens_and_drops_all_when_lost(
    db_session: AsyncSession,
) -> None:
    product_id, revision = await _stocked(db_session, 5)
    view = StockView()
    assert await view.available(db_session, [product_id]) == {product_id: 5}
    assert (len(view), view.reads) == (0, 1)  # not listening: read, not kept

    view.listening()
    assert await view.available(db_session, [product_id, "prod_none"]) == {
        product_id: 5,
        "prod_none": 0,  # no stock row
    }
    assert (len(view), view.reads) == (2, 3)
    assert await view.available(db_session, [product_id]) == {product_id: 5}
    assert view.reads == 3  # held

    view.notified(f"{product_id} 9 {revision + 1}")
    assert await view.available(db_session, [product_id]) == {product_id: 9}
    # An older change's notification, still on its way when the newer one was heard.
    view.notified(f"{product_id} 7 {revision}")
    assert await view.available(db_session, [product_id]) == {product_id: 9}

    view.lost()
    assert len(view) == 0
    assert await view.available(db_session, [product_id]) == {product_id: 5}  # the database
    assert (len(view), view.reads) == (0, 4)


async def test_a_read_keeps_neither_what_a_drop_or_a_newer_change_overtook(
    db_session: AsyncSession,
) -> None:
    product_id, revision = await _stocked(db_session, 5)
    view = StockView()
    view.listening()
    # The view is dropped (the connection was lost and found again) while the read is on
    # its way: what it read may predate a lost notification, so it is not kept.
    reading = asyncio.create_task(view.available(db_session, [product_id]))
    await asyncio.sleep(0)  # the read is sent
    view.lost()
    view.listening()
    assert await reading == {product_id: 5}
    assert len(view) == 0

    # A newer change is heard while the read is on its way: it stays.
    reading = asyncio.create_task(view.available(db_session, [product_id]))
    await asyncio.sleep(0)
    view.notified(f"{product_id} 2 {revision + 1}")
    assert await reading == {product_id: 5}  # this request shows what it read
    assert await view.available(db_session, [product_id]) == {product_id: 2}
    # Read and held, an older change's late notification does not move it back.
    view.lost()
    view.listening()
    assert await view.available(db_session, [product_id]) == {product_id: 5}
    view.notified(f"{product_id} 8 {revision - 1}")
    assert await view.available(db_session, [product_id]) == {product_id: 5}


def test_a_stock_read_with_its_product_is_kept_and_the_newer_change_shown() -> None:
    """``StockView.read``: the stock a product detail read with its row (one statement)."""
    view = StockView()
    begun = view.reading()
    assert view.read(begun, "prod_a", 5, 10) == 5
    assert (len(view), view.reads) == (0, 1)  # not listening: shown, not kept

    view.listening()
    assert view.read(view.reading(), "prod_a", 5, 10) == 5
    assert (len(view), view.reads) == (1, 2)
    # Held: a read of an older revision shows the held change, one of a newer the read's
    # (its notification is on its way), which is kept.
    view.notified("prod_a 3 12")
    assert view.read(view.reading(), "prod_a", 5, 10) == 3
    assert view.read(view.reading(), "prod_a", 1, 13) == 1
    assert view.shows([("prod_a", 1)])
    assert view.reads == 2  # held: not counted as a read

    # Dropped while the read was on its way (the connection lost and found again): shown,
    # not kept, as what it read may predate a lost notification.
    begun = view.reading()
    view.lost()
    view.listening()
    assert view.read(begun, "prod_b", 4, 20) == 4
    assert len(view) == 0
    # A change heard after the drop, newer than the read, is what shows.
    begun = view.reading()
    view.notified("prod_b 6 21")
    assert view.read(begun, "prod_b", 4, 20) == 6


async def test_the_writing_process_reads_the_new_version_at_once_the_others_once_told(
    redis: Redis, db_session: AsyncSession
) -> None:
    writer, other = CatalogVersion(redis), CatalogVersion(redis)
    for version in (writer, other):
        version.listening()
    await until(lambda: writer.known is not None and other.known is not None, "versions held")
    old = writer.known
    assert old is not None
    assert other.known == old
    reads = other.reads
    assert await other.current() == old
    assert other.reads == reads  # held: no round trip

    # No listener here: nothing is delivered unless told below.
    await writer.bump(db_session)
    new = str(int(old) + 1)
    assert writer.known != old
    assert await writer.current() == new
    assert other.known == old  # not told yet: the old version, as the README says

    other.notified(new)
    await until(lambda: other.known == new, "the other process reads the new version")

    # Lost: every request reads Redis (the cache stays right), until listening again.
    other.lost()
    assert other.known is None
    reads = other.reads
    await redis.incr(VERSION_KEY)
    assert await other.current() == str(int(new) + 1)
    assert other.reads == reads + 1
    other.listening()
    await until(lambda: other.known == str(int(new) + 1), "read again on reconnection")
    await writer.aclose()
    await other.aclose()


def test_a_kept_answer_is_sent_only_while_version_expiry_and_stock_agree() -> None:
    clock = Clock()
    stock = StockView()
    stock.listening()
    stock.notified("prod_a 3 10")
    answers = Answers(max_entries=2, clock=clock)
    key = ("/api/products", b"page=2")
    answers.put(key, Answer("7", clock.now + 5, b"{}", (("prod_a", 3),)))
    assert answers.get(key, "7", stock) is not None
    assert answers.get(key, "8", stock) is None  # another version: forgotten
    assert answers.get(key, "7", stock) is None

    answers.put(key, Answer("7", clock.now + 5, b"{}", (("prod_a", 3),)))
    stock.notified("prod_a 2 11")
    assert answers.get(key, "7", stock) is None  # the stock moved since

    answers.put(key, Answer("7", clock.now + 5, b"{}", (("prod_a", 2),)))
    clock.now += 5
    assert answers.get(key, "7", stock) is None  # its cache entry expired (a window's edge)

    answers.put(key, Answer("7", clock.now + 5, b"{}", (("prod_a", 2),)))
    stock.lost()
    assert answers.get(key, "7", stock) is None  # the view was dropped

    for n in range(3):  # over the bound: the oldest goes
        answers.put(("/api/products", str(n).encode()), Answer("7", clock.now + 5, b"{}", ()))
    assert len(answers) == 2
    assert answers.get(("/api/products", b"0"), "7", stock) is None
    assert answers.get(("/api/products", b"2"), "7", stock) is not None


def test_a_kept_search_answer_is_sent_only_while_its_engine_ranks_searches() -> None:
    """A search's answer names the engine and index generation that ranked it: a change
    the relay carried to the index since (a new generation) misses, as does an answer
    asked for without the engine."""
    clock = Clock()
    stock = StockView()
    stock.listening()
    stock.notified("prod_a 3 10")
    answers = Answers(clock=clock)
    key = ("/api/products", b"search=lamp")
    engine = "index:build:1"
    answers.put(key, Answer("7", clock.now + 5, b"{}", (("prod_a", 3),), engine=engine))
    assert answers.get(key, "7", stock, lambda: "index:build:1") is not None
    assert answers.get(key, "7", stock) is None  # no engine named: forgotten
    answers.put(key, Answer("7", clock.now + 5, b"{}", (("prod_a", 3),), engine=engine))
    assert answers.get(key, "7", stock, lambda: "index:build:2") is None
    assert answers.get(key, "7", stock, lambda: "index:build:1") is None
