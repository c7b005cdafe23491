"""A search word's near clause asked in a cheaper form (``checked_plan``) finds the same
documents with the same scores as tantivy's fuzzy prefix query it replaces: thousands of
searches drawn as ``shop bench catalog`` draws them and as people mistype, over an index
of the seed's catalogue kept up as the relay keeps it (a second segment, deletions), on
real tantivy. No database: a search's rows come from a stand-in repository.

And a search's page, ranked from the index's hits and the ids a snapshot keeps, is that of
a plain ranking of the candidates (by score, then id, ids read from the documents) over
4,000 such searches."""

from __future__ import annotations

import asyncio
import gc
import random
import string
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import pytest
import tantivy

from bench.catalog import SEARCH
from cli.seed.catalogue import _product
from cli.seed.vocabulary import TAXONOMY
from models.catalog import Product
from services.catalog import search
from services.catalog.product_query import SEARCH_CANDIDATES, ProductQuery
from services.catalog.product_repository import ProductRepository
from services.catalog.search import (
    IndexedSearch,
    WordPlan,
    checked_plan,
    snapshot_plan,
    text_query,
)
from services.catalog.search_index import (
    IndexSnapshot,
    Searchable,
    SearchIndexReader,
    SearchIndexWriter,
)

SEEDED = 3_000
# Near neighbours the seed's vocabulary lacks: one edit apart, one beginning another.
NEIGHBOURS = [
    "Linen Shirt",
    "Linen Skirt",
    "Woollen Socks",
    "Oak Shelf",
    "Oak Shelves",
    "Steel Stool Cap",
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _seeded(count: int) -> list[tuple[Product, int]]:
    """The seed's first ``count`` products, drawn as ``shop seed`` draws them, and the
    neighbours, each with some stock."""
    leaves = [(leaf, f"cat_{n}") for n, leaf in enumerate(c for _, cs in TAXONOMY for c in cs)]
    base = random.Random(42).getrandbits(64)
    products = []
    for n in range(1, count + 1):
        own = random.Random(f"{base}:{n}")
        created = _product(own, n, *own.choice(leaves))
        products.append(
            Product(
                **created.model_dump(), id=f"prod_{n:08d}", created_at=START + timedelta(hours=n)
            )
        )
    for n, name in enumerate(NEIGHBOURS, start=count + 1):
        products.append(
            Product(
                id=f"prod_{n:08d}",
                sku=f"N-{n}",
                slug=f"n-{n}",
                name=name,
                description=f"A {name.lower()}.",
                price=1000 + n,
                currency="USD",
                created_at=START + timedelta(hours=n),
            )
        )
    return [(product, n % 3) for n, product in enumerate(products)]


async def _batches(products: Searchable) -> AsyncIterator[Searchable]:
    for start in range(0, len(products), 1000):
        yield products[start : start + 1000]


def replace_name(product: Product, name: str) -> Product:
    return product.model_copy(update={"name": name})


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded index, built, then kept up: some products written again (a segment of
    their own, their old documents deleted) and some removed."""
    path = tmp_path_factory.mktemp("near-words") / "search-index"
    products = _seeded(SEEDED)
    writer = SearchIndexWriter(path)

    async def build() -> None:
        await writer.rebuild(_batches(products))
        again = [(replace_name(p, f"{p.name} Pro"), n) for p, n in products[::7]]
        removed = [p.id for p, _ in products[3::11]]
        assert await writer.apply(again, removed)

    asyncio.run(build())
    return path


@pytest.fixture
def snapshot(index_path: Path) -> IndexSnapshot:
    found = SearchIndexReader(index_path).snapshot()
    assert found is not None, "the index is built and ready"
    return found


@pytest.fixture
def at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Words planned on their first search (not their ``PLAN_AFTER``-th)."""
    monkeypatch.setattr(search, "PLAN_AFTER", 1)


def _bench_draws(count: int) -> list[str]:
    draw = SEARCH(random.Random(11))
    return [parse_qs(urlparse(draw()).query)["search"][0] for _ in range(count)]


def _typed(rng: random.Random, word: str) -> str:
    """``word`` as people type it: cut off, or one edit (at any place, the first too)."""
    at = rng.randrange(len(word))
    letter = rng.choice(string.ascii_lowercase)
    match rng.randrange(6):
        case 0:
            return word[: rng.randint(min(3, len(word)), len(word))]
        case 1:
            return word[:at] + letter + word[at + 1 :]
        case 2:
            return word[:at] + letter + word[at:]
        case 3:
            return word[:at] + word[at + 1 :]
        case 4:
            return word[:at] + word[at + 1 : at + 2] + word[at : at + 1] + word[at + 2 :]
        case _:
            return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 7)))


def _typed_draws(snapshot: IndexSnapshot, count: int) -> list[str]:
    vocabulary = [term for term, _ in snapshot.searcher.terms_with_prefix("name_words", "")]
    rng = random.Random(5)
    draws = []
    for _ in range(count):
        words = [_typed(rng, rng.choice(vocabulary)) for _ in range(rng.choice([1, 1, 2]))]
        draws.append(" ".join(word.upper() if rng.random() < 0.1 else word for word in words))
    return draws


def _answers(snapshot: IndexSnapshot, query: tantivy.Query | None) -> Any:
    """What a search reads of the index: the candidates' scores and ids by rank, the
    count, and the first page by price (a sorted search's window)."""
    if query is None:
        return None
    searcher = snapshot.searcher
    ranked = searcher.search(query, SEARCH_CANDIDATES + 1, count=False).hits
    by_price = searcher.search(query, 20, count=False, order_by_field="price").hits
    return (
        [(score, snapshot.product_id(address)) for score, address in ranked],
        snapshot.count(query),
        [(price, snapshot.product_id(address)) for price, address in by_price],
    )


def _same_answers(snapshot: IndexSnapshot, texts: Sequence[str]) -> dict[str, int]:
    """Asserts each text's answers are those of the fuzzy query; how the words were
    planned, by kind (to show the draws reached every form)."""
    plan = partial(snapshot_plan, snapshot)
    for text in texts:
        expected = _answers(snapshot, text_query(snapshot.schema, text))
        assert _answers(snapshot, text_query(snapshot.schema, text, plan)) == expected, text
    kinds: dict[str, int] = {}
    for plan_of_word in snapshot.word_plans.values():
        kind = _kind(plan_of_word)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _kind(plan: WordPlan) -> str:
    if plan.near is None:
        return "none"
    near = "fuzzy" if "FuzzyTermQuery" in repr(plan.near) else "terms"
    return f"{near}, optional" if plan.optional else near


@pytest.mark.usefixtures("at_once")
def test_the_bench_searches_find_what_the_fuzzy_query_finds(snapshot: IndexSnapshot) -> None:
    kinds = _same_answers(snapshot, _bench_draws(2_000))
    assert {"terms, optional", "terms", "fuzzy"} <= set(kinds), kinds
    assert kinds["terms, optional"] > kinds["fuzzy"], kinds


@pytest.mark.usefixtures("at_once")
def test_mistyped_searches_find_what_the_fuzzy_query_finds(snapshot: IndexSnapshot) -> None:
    kinds = _same_answers(snapshot, _typed_draws(snapshot, 2_000))
    assert {"terms, optional", "terms", "fuzzy", "fuzzy, optional", "none"} <= set(kinds), kinds


def _plan(snapshot: IndexSnapshot, word: str) -> str:
    plan = snapshot_plan(snapshot, word, search._STEMS.analyze(word)[0])
    return _kind(plan)


@pytest.mark.parametrize(
    ("word", "kind"),
    [
        ("linen", "terms, optional"),  # a full word: its own term, only adding to its stem's
        ("shirt", "fuzzy"),  # "skirt" is one edit away: kept
        ("skirt", "fuzzy"),
        ("planner", "fuzzy"),  # "planter"
        ("plan", "terms"),  # as people type: planner, planter (no stem "plan")
        ("bamb", "terms"),  # cut off: bamboo
        ("sta", "terms"),  # stand, standing
        ("oak", "terms, optional"),  # three letters: words beginning with it
        ("wool", "terms"),  # four: wool, woollen (not the stem "wool")
        ("cap", "terms, optional"),
        ("zzyzx", "none"),  # in no name
        ("xlinen", "fuzzy"),  # "linen" is one edit away, no word begins with it
    ],
)
@pytest.mark.usefixtures("at_once")
def test_a_word_is_planned_by_what_its_near_words_are(
    snapshot: IndexSnapshot, word: str, kind: str
) -> None:
    assert _plan(snapshot, word) == kind
    assert _same_answers(snapshot, [word, f"{word} steel"])


@pytest.mark.usefixtures("at_once")
async def test_a_new_snapshot_plans_again(index_path: Path) -> None:
    """Plans hold for the snapshot they were checked on: once no live product is named
    "skirt" (its term still in the index), "shirt" needs no fuzzy query."""
    reader = SearchIndexReader(index_path)
    before = reader.snapshot()
    assert before is not None
    assert _plan(before, "shirt") == "fuzzy"
    skirts = before.searcher.search(tantivy.Query.term_query(before.schema, "name_words", "skirt"))
    removed = [before.product_id(address) for _, address in skirts.hits]
    writer = SearchIndexWriter(index_path)
    try:
        assert await writer.apply([], removed)
        after = reader.snapshot()
        assert after is not None
        assert after is not before
        assert _plan(after, "shirt") == "terms, optional"
        assert _plan(before, "shirt") == "fuzzy"
        assert _same_answers(after, ["shirt", "linen shirt", "skirt"])
    finally:
        skirt = [(p, n) for p, n in _seeded(SEEDED) if p.name == "Linen Skirt"]
        assert await writer.apply(skirt, [])


def test_a_word_is_planned_on_its_eighth_search_in_a_snapshot(snapshot: IndexSnapshot) -> None:
    assert search.PLAN_AFTER == 8
    assert [_plan(snapshot, "linen") for _ in range(7)] == ["fuzzy"] * 7
    assert snapshot.word_plans == {}
    assert snapshot.word_asks == {("linen", "linen"): 7}
    assert _plan(snapshot, "linen") == "terms, optional"
    assert set(snapshot.word_plans) == {("linen", "linen")}
    assert snapshot.word_asks == {}


@pytest.mark.usefixtures("at_once")
def test_past_its_bound_a_snapshot_asks_words_as_written(
    snapshot: IndexSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "WORD_PLANS", 2)
    assert _plan(snapshot, "linen") == "terms, optional"
    assert _plan(snapshot, "oak") == "terms, optional"
    assert _plan(snapshot, "cotton") == "fuzzy"
    assert set(snapshot.word_plans) == {("linen", "linen"), ("oak", "oak")}
    assert checked_plan(snapshot, "cotton", "cotton").near is not None


class _RecordingSearcher:
    """A searcher that records the queries it ranks or sorts by (not those it counts)."""

    def __init__(self, searcher: tantivy.Searcher) -> None:
        self.searcher = searcher
        self.searched: list[str] = []

    def search(self, query: tantivy.Query, *args: Any, **kwargs: Any) -> tantivy.SearchResult:
        if not kwargs.get("count", True):
            self.searched.append(repr(query))
        return self.searcher.search(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.searcher, name)


class _Rows:
    """A repository whose rows are their ids."""

    async def rendered_by_ids(self, ids: Sequence[str]) -> dict[str, str]:
        return {product_id: product_id for product_id in ids}


async def test_a_search_of_full_words_asks_tantivy_for_no_fuzzy_query(
    snapshot: IndexSnapshot,
) -> None:
    """Once its words were searched often enough in the snapshot."""
    searcher = _RecordingSearcher(snapshot.searcher)
    recording = IndexSnapshot(cast(tantivy.Searcher, searcher), snapshot.schema, "recording")
    rows = cast(ProductRepository, _Rows())
    engine = IndexedSearch(recording)
    for page in range(1, 9):
        found = await engine.search(rows, ProductQuery(search="Linen Cap", page=page), None)
    assert all("FuzzyTermQuery" in query for query in searcher.searched[:-1])
    searcher.searched.clear()
    found = await engine.search(rows, ProductQuery(search="Linen Cap"), None)
    expected = text_query(snapshot.schema, "linen cap")
    assert expected is not None
    ranked = snapshot.searcher.search(expected, SEARCH_CANDIDATES + 1, count=False).hits
    assert found.total == len(ranked) > 0
    by_score = sorted((-score, snapshot.product_id(a)) for score, a in ranked[:SEARCH_CANDIDATES])
    assert list(found.rows) == [product_id for _, product_id in by_score[:20]]
    assert len(searcher.searched) == 1
    assert "FuzzyTermQuery" not in searcher.searched[0]


def _documents_ids(snapshot: IndexSnapshot) -> dict[tuple[int, int], str]:
    """Every live document's product id, by address, read from the documents."""
    searcher = snapshot.searcher
    every = searcher.search(tantivy.Query.all_query(), searcher.num_docs, count=False).hits
    return {(a.segment_ord, a.doc): str(searcher.doc(a)["id"][0]) for _, a in every}


async def _same_pages(snapshot: IndexSnapshot, texts: Sequence[str], seed: int) -> int:
    """Asserts each text's page (the bench's pages 1-3, and some deeper) and total are a
    plain ranking's; how many pages held products."""
    documents = _documents_ids(snapshot)
    engine, rows = IndexedSearch(snapshot), cast(ProductRepository, _Rows())
    rng, full = random.Random(seed), 0
    for text in texts:
        page = rng.choice([1, 1, 2, 3, rng.randint(4, 60)])
        limit = rng.choice([20, 20, 20, 7, 100])
        found = await engine.search(rows, ProductQuery(search=text, page=page, limit=limit), None)
        query = text_query(snapshot.schema, text)
        if query is None:
            assert (list(found.rows), found.total) == ([], 0), text
            continue
        hits = snapshot.searcher.search(query, SEARCH_CANDIDATES + 1, count=False).hits
        ranked = sorted(
            (-score, documents[(a.segment_ord, a.doc)]) for score, a in hits[:SEARCH_CANDIDATES]
        )
        expected = [product_id for _, product_id in ranked[(page - 1) * limit : page * limit]]
        assert list(found.rows) == expected, (text, page, limit)
        assert (found.total, found.total_exact) == (
            min(len(hits), SEARCH_CANDIDATES),
            len(hits) <= SEARCH_CANDIDATES,
        ), text
        full += bool(expected)
    return full


async def test_the_bench_searches_rank_as_a_plain_ranking_does(snapshot: IndexSnapshot) -> None:
    """A fresh snapshot: ids read as pages need them, in any order, over the segments
    of a kept-up index."""
    assert snapshot.searcher.num_segments >= 2
    assert await _same_pages(snapshot, _bench_draws(2_000), seed=1) > 1_000


async def test_mistyped_searches_rank_as_a_plain_ranking_does(snapshot: IndexSnapshot) -> None:
    assert await _same_pages(snapshot, _typed_draws(snapshot, 2_000), seed=2) > 500


def test_the_ids_a_snapshot_keeps_are_no_objects_for_the_collector(
    snapshot: IndexSnapshot,
) -> None:
    """A snapshot keeps every id a ranking reads (hundreds a search, up to the whole
    catalogue): by address in a list a segment, so the collector has no object to track
    per id (a dict by (segment, doc) made a tuple per id, each tracked until a pass
    examined it)."""
    searcher = snapshot.searcher
    addresses = [a for _, a in searcher.search(tantivy.Query.all_query(), 1_000, count=False).hits]
    rng = random.Random(3)
    rng.shuffle(addresses)
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        ids = snapshot.product_ids(addresses)
        again = snapshot.product_ids(addresses[::-1])
        tracked = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert tracked < 10, tracked
    documents = _documents_ids(snapshot)
    assert ids == [documents[(a.segment_ord, a.doc)] for a in addresses]
    assert again == ids[::-1]
    assert [snapshot.product_id(a) for a in addresses[:5]] == ids[:5]
